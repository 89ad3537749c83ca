import { setTimeout as delay } from 'node:timers/promises';
import type { Row } from '../lib/checker.js';
import { jobsFile, numberedStep } from '../lib/kiln.js';
import { startTcpProxy } from '../lib/proxy.js';
import type { ScenarioRun } from '../lib/world.js';

/** The scheduler leader's advisory lock key (src/scheduler/scheduler.ts). */
const LEADER_LOCK_KEY = 0x6b696c6e;
const BLACKHOLE_MS = 40_000;
/** From the blackhole's start to another worker leading and a tick fired by it. */
const MAX_RECOVERY_MS = 20_000;

/**
 * The scheduler LEADER's link to Postgres blackholed: packets silently dropped, every socket left
 * open (lib/proxy.ts `blackhole`), so Postgres does not learn that the session is gone and keeps
 * its advisory lock. A per-second schedule runs throughout. Expected: another worker leads and
 * fires within MAX_RECOVERY_MS of the blackhole's start, no tick fired twice, every FIRED tick has
 * exactly one execution, never two runs of the job at once, nothing left or lost. Ticks missed
 * during the gap are recorded MISSED (misfire: run_once, one catch-up run).
 */
export async function blackhole(run: ScenarioRun): Promise<Row> {
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: run.world.pg.port });
  const failures: string[] = [];
  const notes: string[] = [];
  const leaderApp = async (): Promise<string | null> => {
    const { rows } = await run.pool.query<{ app: string }>(
      `select a.application_name as app from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = $1::bigint::oid and l.objsubid = 1
          and l.database = (select oid from pg_database where datname = current_database())`,
      [LEADER_LOCK_KEY],
    );
    return rows[0]?.app ?? null;
  };
  try {
    const viaProxy = new URL(run.databaseUrl);
    viaProxy.port = String(proxy.port);
    await run.startWorker('w-lead', { DATABASE_URL: viaProxy.toString() });
    await run.waitFor('w-lead to hold the leader lock', 30_000, async () => (await leaderApp()) === 'kiln w-lead');
    await run.startWorker('w-ok');
    const [jobId] = await run.client.submit(
      jobsFile([{ name: 'EverySecond', schedule: '* * * * * *', misfire: 'run_once', steps: [numberedStep('t', 3)] }]),
    );
    // Firing steadily, led by w-lead.
    await run.waitFor('5 FIRED ticks', 30_000, async () => {
      const { rows } = await run.pool.query<{ n: number }>(`select count(*)::int as n from ticks where job_id = $1 and outcome = 'FIRED'`, [jobId]);
      return rows[0]!.n >= 5;
    });
    await delay(3000);
    const before = await leaderApp();
    if (before !== 'kiln w-lead') failures.push(`the leader before the blackhole was ${before}, not w-lead`);

    proxy.blackhole();
    const cutAt = Date.now();
    let leaderAt: number | null = null;
    let leaderName: string | null = null;
    while (Date.now() - cutAt < BLACKHOLE_MS) {
      const app = await leaderApp().catch(() => null);
      if (leaderAt === null && app && app !== 'kiln w-lead') {
        leaderAt = Date.now();
        leaderName = app;
      }
      await delay(200);
    }
    proxy.heal();
    const healedAt = Date.now();
    const leaderAfterGap = await leaderApp();
    // Keep firing a little after the heal: the healed old leader must not disturb anything.
    await delay(8000);
    const leaderAtEnd = await leaderApp();
    await run.client.gql(`mutation($id: ID!) { pauseJob(id: $id) { id } }`, { id: jobId });

    // The first fire after the cut may be the housekeeping task's (every minute, any worker):
    // recovery is measured to the new leader's first fire.
    const { rows: first } = await run.pool.query<{ any: Date | null; led: Date | null }>(
      `select min(recorded_at) as any, min(recorded_at) filter (where recorded_at >= $3) as led
         from ticks where job_id = $1 and outcome = 'FIRED' and recorded_at >= $2`,
      [jobId, new Date(cutAt), new Date((leaderAt ?? Date.now()) - 1000)],
    );
    const anyFireAt = first[0]?.any ? first[0].any.getTime() : null;
    const firesAt = first[0]?.led ? first[0].led.getTime() : null;
    const { rows: outcomes } = await run.pool.query<{ outcome: string; gap: number; total: number }>(
      `select outcome, count(*) filter (where fire_time >= $2 and fire_time < $3)::int as gap, count(*)::int as total
         from ticks where job_id = $1 group by outcome order by outcome`,
      [jobId, new Date(cutAt), new Date(healedAt)],
    );
    const { rows: ledger } = await run.pool.query<{ n: number; first: Date; last: Date; catch_up: number }>(
      `select count(*)::int as n, min(fire_time) as first, max(fire_time) as last, count(*) filter (where catch_up)::int as catch_up from ticks where job_id = $1`,
      [jobId],
    );
    const l = ledger[0]!;
    const span = Math.round((l.last.getTime() - l.first.getTime()) / 1000) + 1;
    if (l.n !== span) failures.push(`the tick ledger has ${l.n} ticks for ${span} seconds (holes or doubles)`);
    const stepDown = run.workers.get('w-lead')!.output().split('\n').find((x) => x.includes('leadership lost'));
    const stepDownAt = stepDown ? Date.parse(/"time":"([^"]+)"/.exec(stepDown)?.[1] ?? /^(\S+)/.exec(stepDown)?.[1] ?? '') : NaN;
    const takeover = run.workers.get('w-ok')!.output().split('\n').find((x) => x.includes('terminated it to take over'));

    if (leaderAt === null) failures.push(`no other worker became the leader during the ${BLACKHOLE_MS} ms blackhole`);
    if (leaderName !== null && leaderName !== 'kiln w-ok') failures.push(`the leader during the blackhole was ${leaderName}`);
    if (firesAt === null) failures.push('no tick fired after the blackhole started');
    if (leaderAfterGap === null) failures.push('no leader at the end of the blackhole');
    if (leaderAtEnd === null) failures.push('no leader after the heal');
    notes.push(
      `blackhole at 0 for ${BLACKHOLE_MS} ms: w-lead stepped down at +${stepDown ? stepDownAt - cutAt : '?'} ms, ${leaderName ?? 'nobody'} held the lock at +${leaderAt === null ? '?' : leaderAt - cutAt} ms` +
        `${takeover ? ' (terminated the silent session)' : ''}, its first fire at +${firesAt === null ? '?' : firesAt - cutAt} ms (first fire by anyone: +${anyFireAt === null ? '?' : anyFireAt - cutAt} ms); leader at the heal ${leaderAfterGap}, 8 s later ${leaderAtEnd}`,
    );
    notes.push(
      `ticks (during the blackhole / all): ${outcomes.map((o) => `${o.outcome} ${o.gap}/${o.total}`).join(', ')}; ${l.catch_up} catch-up; ledger ${l.n} ticks over ${span} s`,
    );
    const recovery = leaderAt !== null && firesAt !== null ? Math.max(leaderAt, firesAt) - cutAt : BLACKHOLE_MS;
    return await run.check({ recoveryMs: [recovery], maxRecoveryMs: MAX_RECOVERY_MS, failures, notes }, 180_000);
  } finally {
    await proxy.close();
  }
}
