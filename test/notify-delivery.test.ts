import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHookReceiver, signedWith, type HookReceiver } from './helpers/hookReceiver.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { sleep, submit } from './helpers/ledger.js';

const SECRET = 'hook-secret-value-0123456789';

/** A one-off job (queued at every submit) that exits with `code`, notifying `url` on `events`. */
function jobFile(name: string, events: string, url: string, code: number, secret = true): string {
  const hook = secret ? `{ url: "${url}", secret: HOOK_SECRET }` : `{ url: "${url}" }`;
  return `jobs:\n  - name: ${name}\n    notify:\n      - on: [${events}]\n        webhook: ${hook}\n    steps: [{run: "exit ${code}"}]\n`;
}

describe('notification delivery', () => {
  let k: TestKiln;
  let receiver: HookReceiver;
  let token: string;

  beforeAll(async () => {
    receiver = await startHookReceiver();
    k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop', KILN_WEBHOOK_ALLOW: '127.0.0.1/32' } });
    token = await k.token('alice');
    const set = await k.gql(`mutation($v: String!) { setSecret(name: "HOOK_SECRET", value: $v) { name } }`, { v: SECRET }, token);
    expect(set.errors).toBeUndefined();
  });
  afterAll(async () => {
    await k?.stop();
    await receiver?.close();
  });

  /** Submits `yaml` (one job) and waits until its newest execution has a final status. */
  async function runOnce(yaml: string): Promise<string> {
    const [jobId] = await submit(k.gql, token, yaml);
    await waitFor(async () => {
      const { rows } = await k.kiln.deps.pool.query(`select status from executions where job_id = $1 order by number desc limit 1`, [jobId]);
      return rows[0] && !['QUEUED', 'RUNNING'].includes(rows[0].status) ? true : undefined;
    }, 20_000, 'the run to end');
    return jobId!;
  }

  const at = (path: string) => receiver.received.filter((r) => r.path === path);

  it('notifies failed, failed, fixed for [failed, fixed] and first_failure, fixed for [first_failure, fixed], every body signed', async () => {
    for (const code of [1, 1, 0]) {
      await runOnce(jobFile('FailsTwice', 'failed, fixed', `${receiver.url}/all`, code));
      await runOnce(jobFile('FailsTwiceFirst', 'first_failure, fixed', `${receiver.url}/first`, code));
    }
    await waitFor(async () => (at('/all').length >= 3 && at('/first').length >= 2 ? true : undefined), 20_000, 'five deliveries');
    await sleep(2_500); // time for any extra (wrong) delivery to arrive
    const all = at('/all');
    const first = at('/first');
    expect(all.map((r) => r.json.event)).toEqual(['failed', 'failed', 'fixed']);
    expect(first.map((r) => r.json.event)).toEqual(['first_failure', 'fixed']);
    for (const r of [...all, ...first]) {
      expect(signedWith(r, SECRET)).toBe(true);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['user-agent']).toBe('Kiln');
      expect(r.headers['x-kiln-event']).toBe(r.json.event);
      expect(r.headers['x-kiln-delivery']).toBe(r.json.delivery_id);
      expect(r.json.job.name).toMatch(/^FailsTwice/);
      expect(r.json.execution.url).toBe(`${k.url}/executions/${r.json.execution.id}`);
    }
    expect(new Set([...all, ...first].map((r) => r.json.delivery_id)).size).toBe(5);
    expect(all.map((r) => r.json.execution.status)).toEqual(['FAILED', 'FAILED', 'SUCCEEDED']);
    expect(all[0]!.json.execution.exit_code).toBe(1);
    // The first failure is `failed` and `first_failure`: a rule that asks for both gets one delivery naming both.
    expect(first[0]!.json.events).toEqual(['first_failure']);
    expect(all[0]!.json.events).toEqual(['failed']);
    // A body signed with another key does not pass the receiver's check.
    expect(signedWith(all[0]!, 'another-secret')).toBe(false);
  });

  it('one delivery per execution and rule names every event it matched, the most specific as `event`', async () => {
    await runOnce(jobFile('BothEvents', 'failed, first_failure', `${receiver.url}/both`, 3));
    const [r] = await waitFor(async () => (at('/both').length === 1 ? at('/both') : undefined), 20_000, 'the delivery');
    await sleep(1_500);
    expect(at('/both')).toHaveLength(1);
    expect(r!.json.event).toBe('first_failure');
    expect(r!.json.events).toEqual(['failed', 'first_failure']);
  });

  it('retries 500 answers with backoff: delivered on attempt 3, with every try recorded', async () => {
    receiver.answer = (_n, req) => (req.path === '/flaky' && at('/flaky').length < 2 ? { status: 500 } : { status: 200 });
    const jobId = await runOnce(jobFile('Flaky', 'failed', `${receiver.url}/flaky`, 1));
    await waitFor(async () => (at('/flaky').length === 3 ? true : undefined), 20_000, 'three tries');
    const ids = new Set(at('/flaky').map((r) => r.headers['x-kiln-delivery']));
    expect(ids.size).toBe(1);
    const delivery = await waitFor(async () => {
      const res = await k.gql(
        `query($id: ID!) { job(id: $id) { deliveries { edges { node { id event channel target status attempts responseCode lastError deliveredAt execution { id }
           tries { attempt startedAt durationMs responseCode error } } } } } }`,
        { id: jobId },
        token,
      );
      const node = res.data?.job.deliveries.edges[0]?.node;
      return node?.status === 'DELIVERED' ? node : undefined;
    }, 10_000, 'the delivery to be recorded as DELIVERED');
    expect(delivery).toMatchObject({ event: 'failed', channel: 'webhook', target: `${receiver.url}/flaky`, attempts: 3, responseCode: 200, lastError: null });
    expect(delivery.id).toBe([...ids][0]);
    expect(delivery.tries.map((t: { attempt: number; responseCode: number }) => [t.attempt, t.responseCode])).toEqual([[1, 500], [2, 500], [3, 200]]);
    expect(delivery.tries[0].error).toMatch(/HTTP 500/);
    // Backoff: 1 s after the first try, 2 s after the second (the one backoff rule, base 1 s).
    const started = delivery.tries.map((t: { startedAt: string }) => Date.parse(t.startedAt));
    expect(started[1] - started[0]).toBeGreaterThanOrEqual(900);
    expect(started[2] - started[1]).toBeGreaterThanOrEqual(1900);
  });

  it('does not follow a redirect: the delivery fails for good, naming it', async () => {
    receiver.answer = (_n, req) => (req.path === '/moved' ? { status: 302, location: `${receiver.url}/elsewhere` } : { status: 200 });
    const jobId = await runOnce(jobFile('Moved', 'failed', `${receiver.url}/moved`, 1, false));
    const row = await waitFor(async () => {
      const { rows } = await k.kiln.deps.pool.query(`select status, attempts, response_code, last_error from notification_deliveries where job_id = $1`, [jobId]);
      return rows[0]?.status === 'FAILED' ? rows[0] : undefined;
    }, 20_000, 'the delivery to fail');
    expect(row).toMatchObject({ attempts: 1, response_code: 302 });
    expect(row.last_error).toMatch(/redirect .* not followed/);
    expect(at('/moved')).toHaveLength(1);
    expect(at('/elsewhere')).toHaveLength(0);
    expect(at('/moved')[0]!.headers['x-kiln-signature-256']).toBeUndefined();
  });

  it('notifies running_longer once while a run outlasts longer_than, and timed_out as the most specific event of its ending', async () => {
    const yaml = `jobs:\n  - name: Slow\n    timeout: 5s\n    notify:\n      - on: [running_longer]\n        longer_than: 1s\n        webhook: { url: "${receiver.url}/long" }\n      - on: [failed, timed_out]\n        webhook: { url: "${receiver.url}/timeout" }\n    steps: [{run: "sleep 30"}]\n`;
    const jobId = await runOnce(yaml);
    await waitFor(async () => (at('/timeout').length === 1 ? true : undefined), 20_000, 'the timed_out delivery');
    await sleep(2_500); // another sweep: still one running_longer delivery
    expect(at('/long').map((r) => [r.json.event, r.json.execution.status])).toEqual([['running_longer', 'RUNNING']]);
    const [ended] = at('/timeout');
    expect(ended!.json).toMatchObject({ event: 'timed_out', events: ['failed', 'timed_out'], execution: { status: 'TIMED_OUT' } });
    const { rows } = await k.kiln.deps.pool.query(`select event, rule_index from notification_deliveries where job_id = $1 order by rule_index`, [jobId]);
    expect(rows).toEqual([{ event: 'running_longer', rule_index: 0 }, { event: 'timed_out', rule_index: 1 }]);
  });

  it('sends a Slack message to the URL a secret holds, and shows the secret, not the URL, as the target', async () => {
    const set = await k.gql(`mutation($v: String!) { setSecret(name: "SLACK_URL", value: $v) { name } }`, { v: `${receiver.url}/slack/T000/B000/XXXX` }, token);
    expect(set.errors).toBeUndefined();
    const jobId = await runOnce(`jobs:\n  - name: Chatty\n    notify:\n      - on: [failed]\n        slack: { secret: SLACK_URL }\n    steps: [{run: "exit 2"}]\n`);
    const [message] = await waitFor(async () => (at('/slack/T000/B000/XXXX').length === 1 ? at('/slack/T000/B000/XXXX') : undefined), 20_000, 'the Slack message');
    expect(message!.json.text).toMatch(/^\*Chatty\* failed\n<http:\/\/127\.0\.0\.1:\d+\/executions\/[0-9a-f-]{36}\|execution> FAILED, exit 2, step "exit 2" exited with code 2$/);
    const { rows } = await k.kiln.deps.pool.query(`select target from notification_deliveries where job_id = $1`, [jobId]);
    expect(rows).toEqual([{ target: 'secret SLACK_URL' }]);
  });

  it('a job without notify rules queues nothing', async () => {
    const [jobId] = await submit(k.gql, token, 'jobs:\n  - name: Quiet\n    steps: [{run: "exit 1"}]\n');
    await waitFor(async () => {
      const { rows } = await k.kiln.deps.pool.query(`select status from executions where job_id = $1`, [jobId]);
      return rows[0]?.status === 'FAILED' ? true : undefined;
    }, 20_000, 'the run to fail');
    const { rows } = await k.kiln.deps.pool.query(`select count(*)::int as n from notification_deliveries where job_id = $1`, [jobId]);
    expect(rows[0].n).toBe(0);
  });
});
