import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderLine } from '../src/logs/archive.js';
import { MASK } from '../src/logs/mask.js';
import { createEmailChannel } from '../src/notify/channels/email.js';
import { renderMail } from '../src/notify/channels/emailMessage.js';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { jobYaml, logsOf, submitJob, waitForEnd } from './helpers/runner.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtpSink.js';

/** Issue 14, item 4: failure mails through SMTP (docs/design.md#notification-email). */
const DEPLOY_TOKEN = 'dtok-9b31f0c4a7e2';
const ONCALL = 'oncall@example.com';
const FLAKY = 'flaky@example.com';
const GONE = 'gone@example.com';
const PUBLIC_URL = 'http://localhost:4173';

interface DeliveryView {
  channel: string;
  target: string;
  status: string;
  attempts: number;
  responseCode: number | null;
  lastError: string | null;
  tries: Array<{ attempt: number; responseCode: number | null }>;
}

describe('email notifications (issue 14, item 4)', () => {
  let sink: SmtpSink;
  let k: TestKiln;
  let alice: string;
  let jobId: string;
  let executionId: string;

  /** The job's deliveries through Job.deliveries, oldest first. */
  const deliveries = async () => {
    const res = await k.gql(
      `query($id: ID!) { job(id: $id) { deliveries(first: 20) { edges { node { channel target status attempts responseCode lastError tries { attempt responseCode } } } } } }`,
      { id: jobId },
      alice,
    );
    expect(res.errors).toBeUndefined();
    return (res.data!.job.deliveries.edges as Array<{ node: DeliveryView }>).map((e) => e.node).reverse();
  };

  beforeAll(async () => {
    await requireDocker();
    // The relay is up for the first address, refuses the second once with 451, the third for good with 550.
    sink = await startSmtpSink({ answer: (to, n) => (to.includes(GONE) ? 550 : to.includes(FLAKY) && n === 1 ? 451 : 250) });
    k = await startTestKiln({ env: { KILN_SMTP_URL: sink.url, KILN_SMTP_FROM: 'kiln@ci.example.com', KILN_PUBLIC_URL: PUBLIC_URL } });
    alice = await k.token('alice');
    await k.gql(`mutation($n: String!, $v: String!) { setSecret(name: $n, value: $v) { name } }`, { n: 'DEPLOY_TOKEN', v: DEPLOY_TOKEN }, alice);
    const yaml = jobYaml(
      'NightlyDeploy',
      ['for i in $(seq 1 30); do echo "deploy line $i"; done', 'echo "using token $DEPLOY_TOKEN"; exit 3'],
      [
        'secrets: [DEPLOY_TOKEN]',
        'notify:',
        `  - { on: [failed], email: [${ONCALL}] }`,
        `  - { on: [failed, fixed], email: [${FLAKY}] }`,
        `  - { on: [first_failure], email: [${GONE}] }`,
      ],
    );
    ({ jobId, executionId } = await submitJob(k, alice, yaml));
    const end = await waitForEnd(k, alice, executionId, 90_000);
    expect(end.status).toBe('FAILED');
  }, 120_000);

  afterAll(async () => {
    await k?.stop();
    await sink?.stop();
  });

  it('sends one mail for the failure with the job, the execution link and the last 20 log lines, the secret masked', async () => {
    const [mail] = await sink.waitForMails(1, 15_000);
    // A little longer: no second mail follows.
    await new Promise((r) => setTimeout(r, 1500));
    const toOncall = sink.mails.filter((m) => m.to.includes(ONCALL));
    expect(toOncall).toHaveLength(1);
    expect(mail!.from).toBe('kiln@ci.example.com');
    expect(mail!.headers.get('subject')).toBe('[Kiln] NightlyDeploy: failed');
    expect(mail!.headers.get('message-id')).toMatch(/^<[0-9a-f-]{36}@kiln>$/);
    const text = mail!.text;
    expect(text).toContain(`NightlyDeploy (${jobId})`);
    expect(text).toContain(`Execution: ${PUBLIC_URL}/executions/${executionId}`);
    expect(text).toMatch(/Status:\s+FAILED, exit code 3/);
    const logs = await logsOf(k, alice, executionId);
    const last20 = logs.slice(-20).map((l) => `  ${renderLine({ stream: l.stream as never, text: l.text })}`);
    expect(logs.length).toBeGreaterThan(20);
    expect(text).toContain(['Last 20 log lines:', '', ...last20].join('\n'));
    expect(text).toContain(`using token ${MASK}`);
    expect(mail!.raw).not.toContain(DEPLOY_TOKEN);
    expect(text).not.toContain(DEPLOY_TOKEN);
    expect(text).not.toContain('deploy line 1\n');
  });

  it('retries a 451 and delivers on attempt 2; fails a 550 after one attempt', async () => {
    const rows = await waitFor(
      async () => {
        const r = await deliveries();
        return r.length === 3 && r.every((d) => d.status !== 'PENDING') ? r : undefined;
      },
      20_000,
      'the three deliveries to settle',
    );
    rows.sort((x, y) => x.target.localeCompare(y.target));
    expect(rows.map((d) => [d.target, d.status, d.attempts, d.responseCode])).toEqual([
      [FLAKY, 'DELIVERED', 2, 250],
      [GONE, 'FAILED', 1, 550],
      [ONCALL, 'DELIVERED', 1, 250],
    ]);
    expect(rows[0]!.tries).toEqual([
      { attempt: 1, responseCode: 451 },
      { attempt: 2, responseCode: 250 },
    ]);
    expect(rows[1]!.lastError).toContain('550');
    // The sink saw exactly that: the flaky address twice, the gone one once.
    expect(sink.answered.map((a) => `${a.to.join()} ${a.code}`).sort()).toEqual([`${FLAKY} 250`, `${FLAKY} 451`, `${GONE} 550`, `${ONCALL} 250`]);
    expect(sink.mails.filter((m) => m.to.includes(FLAKY))).toHaveLength(1);
  });

  it('warns at the email key of a file submitted to a server without KILN_SMTP_URL, whose mails then fail for good', async () => {
    const plain = await startTestKiln({ databaseUrl: k.databaseUrl, worker: false });
    try {
      const yaml = jobYaml('Mailless', ['true'], ['notify:', `  - { on: [failed], email: [${ONCALL}] }`]);
      const res = await plain.gql(`query($s: String!) { validateJobSpec(spec: $s) { valid diagnostics { line column path severity message } } }`, { s: yaml }, alice);
      expect(res.data?.validateJobSpec).toEqual({
        valid: true,
        diagnostics: [{ line: 4, column: 25, path: 'jobs[0].notify[0].email', severity: 'warning', message: expect.stringContaining('KILN_SMTP_URL is not set') }],
      });
      // The server with a relay has nothing to say about the same file.
      const withMail = await k.gql(`query($s: String!) { validateJobSpec(spec: $s) { valid diagnostics { message } } }`, { s: yaml }, alice);
      expect(withMail.data?.validateJobSpec).toEqual({ valid: true, diagnostics: [] });
      const channel = createEmailChannel({ notify: plain.kiln.deps.config.notify, publicUrl: PUBLIC_URL }, {} as never);
      expect(await channel.send({} as never, new AbortController().signal)).toEqual({ ok: false, permanent: true, responseCode: null, error: 'KILN_SMTP_URL is not set' });
    } finally {
      await plain.stop();
    }
  });
});

describe('renderMail', () => {
  const base = { delivery_id: 'd-1', job: { id: 'j-1', name: 'Nightly' }, occurred_at: '2030-01-01T00:00:12.000Z' };
  const execution = { id: 'e-1', status: 'TIMED_OUT', exit_code: null, error: 'timed out after 1m', started_at: '2030-01-01T00:00:00.000Z', finished_at: '2030-01-01T00:01:00.000Z', url: 'http://localhost:4173/executions/e-1' };

  it.each([
    ['timed_out', ['failed', 'timed_out'], '[Kiln] Nightly: timed out'],
    ['first_failure', ['failed', 'first_failure'], '[Kiln] Nightly: failed (first failure)'],
    ['fixed', ['fixed'], '[Kiln] Nightly: fixed'],
  ] as const)('names the job and the event %s in the subject', (event, events, subject) => {
    const mail = renderMail({ ...base, event, events: [...events], execution }, ['one'], 'masked error');
    expect(mail.subject).toBe(subject);
    expect(mail.text).toContain(`Event:     ${events.length > 1 ? `${event} (${events.join(', ')})` : event}`);
    expect(mail.text).toContain('Error:     masked error');
    expect(mail.text).toContain('Last 1 log line:\n\n  one\n');
  });

  it('says how many fire times a missed mail counts, and quotes no log', () => {
    const missed = { count: 10, first_fire_at: '2030-01-01T00:00:01.000Z', last_fire_at: '2030-01-01T00:00:10.000Z' };
    const mail = renderMail({ ...base, event: 'missed', events: ['missed'], missed }, [], null);
    expect(mail.subject).toBe('[Kiln] Nightly: missed 10 fire times');
    expect(mail.text).toBe(
      [
        'Job:          Nightly (j-1)',
        'Event:        missed',
        'Missed:       10 fire times',
        'First missed: 2030-01-01T00:00:01.000Z',
        'Last missed:  2030-01-01T00:00:10.000Z',
        '',
        'Sent by Kiln at 2030-01-01T00:00:12.000Z, delivery d-1.',
        '',
      ].join('\n'),
    );
  });
});
