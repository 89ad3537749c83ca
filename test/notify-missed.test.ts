import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MISSED_MIN_GAP_MS, queueMissed } from '../src/notify/missed.js';
import { TickOutcome } from '../src/schedule/policies.js';
import { inTransaction } from '../src/util/sql.js';
import { startHookReceiver, type HookReceiver } from './helpers/hookReceiver.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { sleep, submit, ticksOf } from './helpers/ledger.js';

/** Issue 14, item 3: missed fire times are notified grouped (docs/design.md#notification-missed). */

interface MissedBody {
  event: string;
  job: { id: string };
  missed?: { count: number; first_fire_at: string; last_fire_at: string };
}

/** What the receiver got, with when it arrived. */
interface Arrival {
  path: string;
  at: number;
  event: string | undefined;
  delivery: string | undefined;
  body: MissedBody;
}

const missedRules = (url: string) =>
  [
    '    notify:',
    `      - { on: [missed], webhook: { url: "${url}/a" } }`,
    `      - { on: [failed, missed], webhook: { url: "${url}/b" }, email: [oncall@example.com] }`,
  ].join('\n');

describe('missed notifications (issue 14, item 3)', () => {
  let receiver: HookReceiver;
  const arrivals: Arrival[] = [];
  beforeAll(async () => {
    receiver = await startHookReceiver();
    receiver.answer = (_n, r) => {
      const header = (name: string) => r.headers[name] as string | undefined;
      arrivals.push({ path: r.path, at: Date.now(), event: header('x-kiln-event'), delivery: header('x-kiln-delivery'), body: r.json });
      return { status: 200 };
    };
  });
  afterAll(async () => {
    await receiver?.close();
  });

  describe('queueing', () => {
    let k: TestKiln;
    let jobId: string;
    let quietId: string;
    const rows = async () =>
      (
        await k.kiln.deps.pool.query<{ id: string; rule_index: number; channel: string; count: number; first_fire_at: Date; last_fire_at: Date; payload: MissedBody }>(
          `select id, rule_index, channel, count, first_fire_at, last_fire_at, payload from notification_deliveries
            where job_id = $1 order by rule_index, channel, created_at`,
          [jobId],
        )
      ).rows;
    const queue = (id: string, seconds: number[]) =>
      inTransaction(k.kiln.deps.pool, (sql) =>
        queueMissed(sql, seconds.map((s) => ({ jobId: id, fireAt: new Date(Date.UTC(2030, 0, 1, 0, 0, s)), outcome: TickOutcome.MISSED }))),
      );

    beforeAll(async () => {
      // No worker: nothing sends, so every delivery stays as queued.
      k = await startTestKiln({ worker: false, env: { KILN_WEBHOOK_ALLOW: '127.0.0.1/32' } });
      const token = await k.token('alice');
      const far = (name: string, extra: string) => `  - name: ${name}\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n${extra}\n`;
      [jobId, quietId] = await submit(k.gql, token, `jobs:\n${far('Watched', missedRules(receiver.url))}${far('Quiet', '    notify: [{ on: [failed], email: [a@example.com] }]')}`);
    });
    afterAll(async () => {
      await k?.stop();
    });

    it('groups missed ticks into one PENDING delivery per rule and channel until a sender tries it', async () => {
      await queue(jobId, [0, 1, 2]);
      let r = await rows();
      expect(r.map((d) => [d.rule_index, d.channel, d.count])).toEqual([
        [0, 'webhook', 3],
        [1, 'email', 3],
        [1, 'webhook', 3],
      ]);
      expect([r[0]!.first_fire_at.toISOString(), r[0]!.last_fire_at.toISOString()]).toEqual(['2030-01-01T00:00:00.000Z', '2030-01-01T00:00:02.000Z']);
      expect(r[0]!.payload).toMatchObject({ event: 'missed', events: ['missed'], job: { id: jobId } });

      await queue(jobId, [3, 4]);
      r = await rows();
      expect(r.map((d) => d.count)).toEqual([5, 5, 5]);
      expect([r[0]!.first_fire_at.toISOString(), r[0]!.last_fire_at.toISOString()]).toEqual(['2030-01-01T00:00:00.000Z', '2030-01-01T00:00:04.000Z']);

      // A sender claimed rule 0's webhook delivery: the next ticks start a delivery of their own.
      await k.kiln.deps.pool.query(`update notification_deliveries set attempts = 1 where id = $1`, [r[0]!.id]);
      await queue(jobId, [5]);
      r = await rows();
      expect(r.map((d) => [d.rule_index, d.channel, d.count])).toEqual([
        [0, 'webhook', 5],
        [0, 'webhook', 1],
        [1, 'email', 6],
        [1, 'webhook', 6],
      ]);
      expect([r[1]!.first_fire_at.toISOString(), r[1]!.last_fire_at.toISOString()]).toEqual(['2030-01-01T00:00:05.000Z', '2030-01-01T00:00:05.000Z']);

      // The new one is due no sooner than a minute after the one before it was queued.
      const { rows: due } = await k.kiln.deps.pool.query<{ gap: number }>(
        `select extract(epoch from (n.next_attempt_at - p.created_at)) as gap
           from notification_deliveries n join notification_deliveries p on p.id = $1 where n.id = $2`,
        [r[0]!.id, r[1]!.id],
      );
      expect(Number(due[0]!.gap)).toBeGreaterThanOrEqual(MISSED_MIN_GAP_MS / 1000);
    });

    it('queues nothing for a job without a missed rule', async () => {
      await queue(quietId, [0, 1]);
      const { rows: quiet } = await k.kiln.deps.pool.query(`select 1 from notification_deliveries where job_id = $1`, [quietId]);
      expect(quiet).toEqual([]);
    });
  });

  describe('a per-second job with misfire: skip and the scheduler stopped for 10 s', () => {
    const ENV = { KILN_EXECUTOR: 'noop', KILN_MISFIRE_GRACE_MS: '1500', KILN_WEBHOOK_ALLOW: '127.0.0.1/32' };
    let first: TestKiln;
    let second: TestKiln;
    let jobId: string;
    let backAt = 0;
    let stoppedAt = 0;

    beforeAll(async () => {
      first = await startTestKiln({ env: ENV });
      const token = await first.token('alice');
      const yaml = `jobs:\n  - name: EverySecond\n    schedule: "*/1 * * * * *"\n    misfire: skip\n    steps: [{run: "true"}]\n${missedRules(receiver.url)}\n`;
      [jobId] = await submit(first.gql, token, yaml);
      await sleep(2_500);
      stoppedAt = Date.now();
      await first.kiln.stop();
      await sleep(10_000);
      second = await startTestKiln({ env: ENV, databaseUrl: first.databaseUrl });
      backAt = Date.now();
    }, 60_000);
    afterAll(async () => {
      await second?.stop();
      await first?.stop().catch(() => {});
    });

    it('sends one missed notification per rule for the outage, counting the missed seconds, within 5 s', async () => {
      const ofJob = () => arrivals.filter((m) => m.at >= stoppedAt && m.body.job.id === jobId);
      await waitFor(async () => (new Set(ofJob().map((m) => m.path)).size === 2 ? true : undefined), 5_000, 'a missed notification to each rule');
      await sleep(3_000);
      const ticks = await ticksOf(second.kiln.deps.pool, jobId);
      const outage = ticks.filter((t) => t.outcome === 'MISSED').map((t) => new Date(t.fire_time).toISOString());
      // Fire times the restart keeps skipping (a run still queued) may follow in messages of their own; the outage is in one.
      for (const path of ['/a', '/b']) {
        const got = ofJob().filter((m) => m.path === path);
        expect(got.every((m) => m.event === 'missed' && m.body.event === 'missed')).toBe(true);
        const covering = got.filter((m) => m.body.missed!.first_fire_at <= outage.at(-1)!);
        expect(covering).toHaveLength(1);
        const [m] = covering;
        expect(m!.at - backAt).toBeLessThan(5_000);
        expect(m!.body.missed!.first_fire_at).toBe(outage[0]);
        expect(m!.body.missed!.last_fire_at >= outage.at(-1)!).toBe(true);
        // The count is what the ledger recorded in that span: every MISSED or SKIPPED_OVERLAP tick.
        const inSpan = ticks.filter((t) => {
          const at = new Date(t.fire_time).toISOString();
          return t.outcome !== 'FIRED' && at >= m!.body.missed!.first_fire_at && at <= m!.body.missed!.last_fire_at;
        });
        expect(m!.body.missed!.count).toBe(inSpan.length);
        expect(m!.body.missed!.count).toBeGreaterThanOrEqual(8);
        expect(m!.body.missed!.count).toBeLessThanOrEqual(13);
      }
      expect(new Set(ofJob().map((m) => m.delivery)).size).toBe(ofJob().length);
    });
  });
});
