import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHookReceiver, signedWith, type HookReceiver } from './helpers/hookReceiver.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { sleep, submit } from './helpers/ledger.js';
import { startKilnProcess, type KilnProcess } from './helpers/processes.js';

const SECRET = 'crash-test-hook-secret';

/**
 * A worker SIGKILLed between sending a notification and recording it: the delivery's lease runs
 * out (KILN_NOTIFY_LEASE_MS, 2 s here) and another worker sends it again under the same delivery
 * id; no second delivery exists for the event. The workers are `kiln worker` processes (compiled:
 * `npm run build` first).
 */
describe('a notification across a worker crash', () => {
  let api: TestKiln;
  let receiver: HookReceiver;
  const workers: KilnProcess[] = [];
  const env = { KILN_EXECUTOR: 'noop', KILN_WEBHOOK_ALLOW: '127.0.0.1/32', KILN_NOTIFY_LEASE_MS: '2000' };

  async function startWorker(id: string): Promise<KilnProcess> {
    const w = startKilnProcess('worker', api.databaseUrl, id, env);
    workers.push(w);
    await waitFor(async () => (/worker .* running/.test(w.output()) ? true : undefined), 30_000, `worker ${id} to run`);
    return w;
  }

  beforeAll(async () => {
    receiver = await startHookReceiver();
    api = await startTestKiln({ worker: false, env });
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await api?.stop();
    await receiver?.close();
  });

  it('sends the same delivery id again after the lease runs out, and never a second delivery', async () => {
    const token = await api.token('alice');
    expect((await api.gql(`mutation { setSecret(name: "HOOK_SECRET", value: "${SECRET}") { name } }`, {}, token)).errors).toBeUndefined();
    // The first request is never answered: the worker dies while it waits.
    receiver.answer = (n) => (n === 0 ? 'hang' : { status: 200 });
    const first = await startWorker('notify-crash-1');
    const yaml = `jobs:\n  - name: Crashy\n    notify:\n      - on: [failed]\n        webhook: { url: "${receiver.url}/hook", secret: HOOK_SECRET }\n    steps: [{run: "exit 1"}]\n`;
    const [jobId] = await submit(api.gql, token, yaml);
    const [sent] = await receiver.waitFor(1, 30_000);
    first.kill();
    await new Promise((resolve) => first.child.once('exit', resolve));
    const pool = api.kiln.deps.pool;
    const { rows: before } = await pool.query(
      `select d.status, d.attempts, (select count(*)::int from notification_attempts a where a.delivery_id = d.id) as tries
         from notification_deliveries d where d.job_id = $1`,
      [jobId],
    );
    expect(before).toEqual([{ status: 'PENDING', attempts: 1, tries: 0 }]);

    await startWorker('notify-crash-2');
    const [, again] = await receiver.waitFor(2, 30_000);
    expect(again!.headers['x-kiln-delivery']).toBe(sent!.headers['x-kiln-delivery']);
    expect(again!.json.delivery_id).toBe(sent!.json.delivery_id);
    expect(signedWith(sent!, SECRET) && signedWith(again!, SECRET)).toBe(true);
    const delivered = await waitFor(async () => {
      const { rows } = await pool.query(`select id, status, attempts from notification_deliveries where job_id = $1`, [jobId]);
      return rows.length === 1 && rows[0].status === 'DELIVERED' ? rows[0] : undefined;
    }, 15_000, 'the delivery to be recorded');
    expect(delivered).toMatchObject({ id: sent!.headers['x-kiln-delivery'], attempts: 2 });
    await sleep(3_000); // past another lease: nothing more may come
    expect(receiver.received).toHaveLength(2);
    expect(new Set(receiver.received.map((r) => r.headers['x-kiln-delivery'])).size).toBe(1);
    const { rows: tries } = await pool.query(`select attempt, response_code from notification_attempts where delivery_id = $1`, [delivered.id]);
    expect(tries).toEqual([{ attempt: 2, response_code: 200 }]);
  });
});
