import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from '../src/notify/channels/httpPost.js';
import { createTargetGuard } from '../src/notify/targetGuard.js';
import { parseTargetPolicy } from '../src/util/targetPolicy.js';
import { startHookReceiver, type HookReceiver } from './helpers/hookReceiver.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { sleep, submit } from './helpers/ledger.js';

const file = (url: string) => `jobs:\n  - name: Guarded\n    notify:\n      - on: [failed]\n        webhook: { url: "${url}" }\n    steps: [{run: "exit 1"}]\n`;

/**
 * Two Kilns on one database: `allowing` (API only) lets loopback targets through
 * (KILN_WEBHOOK_ALLOW=127.0.0.1/32); `strict` (API and worker) allows none, so its worker runs and
 * notifies what `allowing` accepted: the send-time guard holds on its own, as after an operator
 * narrows KILN_WEBHOOK_ALLOW.
 */
describe('the notification target guard', () => {
  let allowing: TestKiln;
  let strict: TestKiln;
  let receiver: HookReceiver;

  beforeAll(async () => {
    receiver = await startHookReceiver();
    allowing = await startTestKiln({ worker: false, env: { KILN_EXECUTOR: 'noop', KILN_WEBHOOK_ALLOW: '127.0.0.1/32' } });
    strict = await startTestKiln({ databaseUrl: allowing.databaseUrl, env: { KILN_EXECUTOR: 'noop' } });
  });
  afterAll(async () => {
    await strict?.stop();
    await allowing?.stop();
    await receiver?.close();
  });

  it.each(['http://127.0.0.1:9/x', 'http://localhost:9/x', 'http://[::1]:9/x', 'http://192.168.0.10/x'])('refuses the literal target %s at submit, with a diagnostic at the URL', async (url) => {
    const token = await strict.token('mallory');
    const res = await strict.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: file(url) }, token);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const [d] = res.errors![0]!.extensions!.diagnostics!;
    expect(d).toMatchObject({ line: 5, column: 25, path: 'jobs[0].notify[0].webhook.url', severity: 'error' });
    expect(d!.message).toMatch(/refused target: .* address; Kiln reaches only public addresses unless KILN_WEBHOOK_ALLOW allows it/);
    const { rows } = await strict.kiln.deps.pool.query(`select count(*)::int as n from jobs where owner = 'mallory'`);
    expect(rows[0].n).toBe(0);
  });

  it('refuses at send a host name that resolves to a loopback address, records why, and sends nothing', async () => {
    const token = await allowing.token('alice');
    const [jobId] = await submit(allowing.gql, token, file(`http://localhost:${receiver.port}/hook`));
    const row = await waitFor(async () => {
      const { rows } = await strict.kiln.deps.pool.query(
        `select status, attempts, response_code, last_error, target from notification_deliveries where job_id = $1`,
        [jobId],
      );
      return rows[0]?.status === 'FAILED' ? rows[0] : undefined;
    }, 20_000, 'the delivery to be refused');
    expect(row).toMatchObject({ attempts: 1, response_code: null, target: `http://localhost:${receiver.port}/hook` });
    expect(row.last_error).toMatch(/^refused target localhost: 127\.0\.0\.1 is a loopback address/);
    await sleep(1_500);
    expect(receiver.received).toHaveLength(0);
    const res = await allowing.gql(`query($id: ID!) { job(id: $id) { deliveries { edges { node { status attempts lastError tries { attempt responseCode error } } } } } }`, { id: jobId }, token);
    const node = res.data?.job.deliveries.edges[0].node;
    expect(node).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(node.tries).toEqual([{ attempt: 1, responseCode: null, error: row.last_error }]);
  });
});

describe('a guarded request', () => {
  it('connects to the address the guard checked, keeping the URL’s host name in the Host header', async () => {
    const receiver = await startHookReceiver();
    try {
      const asked: string[] = [];
      // A name no resolver knows: the request can only reach the receiver through the pinned address.
      const guard = createTargetGuard(parseTargetPolicy(['127.0.0.1/32']), async (host) => {
        asked.push(host);
        return [{ address: '127.0.0.1', family: 4 }];
      });
      const url = new URL(`http://hooks.kiln-test.invalid:${receiver.port}/pinned`);
      const result = await postJson(url, Buffer.from('{}'), { 'Content-Type': 'application/json' }, guard, new AbortController().signal);
      expect(result).toEqual({ ok: true, permanent: false, responseCode: 200, error: null });
      expect(asked).toEqual(['hooks.kiln-test.invalid']);
      expect(receiver.received.map((r) => [r.path, r.headers.host])).toEqual([['/pinned', `hooks.kiln-test.invalid:${receiver.port}`]]);

      const strict = createTargetGuard(parseTargetPolicy([]), async () => [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.7', family: 4 }]);
      expect(await strict.check(new URL('https://mixed.example.com/'))).toEqual({
        ok: false, permanent: true, error: expect.stringMatching(/^refused target mixed\.example\.com: 10\.0\.0\.7 is a private address/),
      });
    } finally {
      await receiver.close();
    }
  });
});
