import { profile, profileLines } from '../lib/pg.js';
import { Probe, waitsLine } from '../lib/probe.js';
import { load1, nextSecond, sleep, summarize } from '../lib/stats.js';
import { planWindow, spreadExpected, type HerdOptions, type HerdRun, type LatenessOptions, type LatenessRun } from './common.js';
import { createJobs, measureTicks, share, triple, troubleLine, withKiln } from './kiln.js';

/**
 * Kiln under the two loads beside the per-second one: the spread (many schedules, each once a
 * minute, at seconds spread over the minute) and the herd (many jobs due in the same second).
 * Same harness as kiln.ts: `kiln start`'s roles in one process, noop executor, a bystander on its
 * API, figures read from the tick ledger and the executions.
 */

/**
 * `o.schedules` jobs, job i on `${i % 60} * * * * *` (once a minute at second i % 60): for every
 * tick of the window (whole minutes, so every schedule fires equally often), started_at -
 * scheduled_for of its execution; fires without an execution count as not run (see measureTicks).
 */
export async function kilnSpread(o: LatenessOptions): Promise<LatenessRun> {
  return withKiln('kiln_spread', o, async (k) => {
    const first = nextSecond(Date.now() + 1000);
    await createJobs(k.kiln, k.pool, o.schedules, 'p', { spread: true, from: new Date(first) });
    const w = planWindow(first, o);
    return measureTicks(k, o, w, spreadExpected(o.schedules, w));
  });
}

/**
 * `o.jobs` jobs whose only fire time is one instant (6-field cron on that second, UTC, so the
 * schedule matches it once a year), `o.leadMs` after set-up begins. Until every fire time of the
 * instant is in the ledger and none of its executions is still QUEUED (or the deadline): then
 * every tick's outcome, and from the instant to each execution's start, the last one above all.
 */
export async function kilnHerd(o: HerdOptions): Promise<HerdRun> {
  return withKiln('kiln_herd', o, async (k) => {
    const { pool, trouble } = k;
    const at = nextSecond(Date.now() + o.leadMs);
    const d = new Date(at);
    const cron = `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} ${d.getUTCDate()} ${d.getUTCMonth() + 1} *`;
    await createJobs(k.kiln, pool, o.jobs, 'h', { schedule: cron, nextRunAt: d });
    const spare = at - Date.now();
    if (spare < 200) throw new Error(`set-up of ${o.jobs} jobs ended ${-spare} ms after the instant: raise --herd-lead`);
    const watchFrom = Math.max(Date.now(), at - 1000);
    await sleep(watchFrom - Date.now());
    const probe = await Probe.start(k.db);
    const bystander = k.bystander();
    profile.byText.clear();
    profile.on = true;
    const instant = [d];
    for (;;) {
      const { rows } = await pool.query<{ ticks: number; waiting: number }>(
        `select count(*)::int as ticks, count(*) filter (where t.outcome = 'FIRED' and e.started_at is null)::int as waiting
           from ticks t left join executions e on e.id = t.execution_id where t.fire_time = $1`,
        instant,
      );
      if ((rows[0]!.ticks >= o.jobs && rows[0]!.waiting === 0) || Date.now() > at + o.timeoutMs) break;
      await sleep(100);
    }
    const watchedMs = Date.now() - watchFrom;
    profile.on = false;
    const [usage, seen] = await Promise.all([probe.stop(), bystander.stop()]);
    const { rows } = await pool.query<{ outcome: string; catch_up: boolean; late: number | null; queued: number | null }>(
      `select t.outcome, t.catch_up,
              extract(epoch from e.started_at - $1) * 1000 as late,
              extract(epoch from e.queued_at - $1) * 1000 as queued
         from ticks t left join executions e on e.id = t.execution_id where t.fire_time = $1`,
      instant,
    );
    const started = rows.filter((r) => r.late !== null);
    const outcomes = new Map<string, number>();
    for (const r of rows) outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
    const unrecorded = o.jobs - rows.length;
    // Every execution the scheduler created, started or not: how long the herd took it to queue.
    const queued = summarize(rows.filter((r) => r.queued !== null).map((r) => Number(r.queued)));
    const late = summarize(started.map((r) => Number(r.late)));
    return {
      system: 'Kiln',
      jobs: o.jobs,
      at,
      samples: started.map((r) => Number(r.late)),
      fired: outcomes.get('FIRED') ?? 0,
      load: load1(),
      bystander: seen,
      detail: [
        `ticks of the instant: ${[...outcomes].map(([x, n]) => `${x} ${n}`).join(', ') || 'none'}` +
          `${unrecorded > 0 ? `, not recorded by the deadline ${unrecorded}` : ''}; catch-up runs (past the misfire grace) ${rows.filter((r) => r.catch_up).length}; ` +
          `FIRED but not started by the deadline: ${rows.filter((r) => r.outcome === 'FIRED' && r.late === null).length}`,
        `instant -> queued (scheduler, all ${queued.count} executions) p50/p99/max ${triple(queued)} ms; instant -> RUNNING (started ones) ${triple(late)} ms; ` +
          `set-up ended ${spare} ms before the instant`,
        `while watched (${(watchedMs / 1000).toFixed(1)} s): Node ${share(usage.nodeCpuMs, watchedMs)}, Postgres backends ${share(usage.serverCpuMs, watchedMs)}; backends: ${waitsLine(usage.waits)}`,
        'statements by time spent waiting for them while watched (client side, summed over all connections; the benchmark\'s polls are among them):',
        ...profileLines(6, Math.max(1, started.length), 'job').map((l) => `    ${l}`),
        ...troubleLine(trouble),
      ],
    };
  });
}
