import { nextFireTimes, type Schedule } from './schedule.js';
import { type ConcurrencyPolicy, type MisfirePolicy, TickOutcome } from './policies.js';
import { decideOverlap, type ActiveExecutions } from './overlap.js';

/** What the planner needs of a job. */
export interface PlannedJob {
  schedule: Schedule;
  timezone: string;
  anchor: Date;
  runOnce: boolean;
  paused: boolean;
  /** The first fire time not yet in the ledger. */
  cursor: Date;
  concurrency: ConcurrencyPolicy;
  misfire: MisfirePolicy;
}

export interface PlannedTick {
  fireTime: Date;
  outcome: TickOutcome;
  catchUp: boolean;
  /** FIRED ticks only: queue an execution for this fire time. */
  run: boolean;
}

export interface FirePlan {
  ticks: PlannedTick[];
  /** The new cursor: the first fire time after the planned ones; null when the job is done. */
  next: Date | null;
  /** Active executions to cancel (the `replace` policy). */
  cancel: string[];
}

export interface PlanOptions {
  /** A fire time reached later than this is a misfire. */
  graceMs: number;
  /** At most this many catch-up runs under `run_all`; later misfires are MISSED. */
  runAllMax: number;
  /** At most this many ticks per pass; the rest are planned on the next pass. */
  maxTicks: number;
}

/**
 * Decides the outcome of every due fire time of one job (cursor <= t <= now), in order:
 *
 * - paused: PAUSED;
 * - reached within `graceMs`: FIRED or SKIPPED_OVERLAP by the `concurrency` policy;
 * - later (the scheduler was down, or far behind): by the `misfire` policy — `skip`: MISSED;
 *   `run_once`: the newest misfire is one catch-up run (still subject to `concurrency`), the
 *   others MISSED; `run_all`: each is a catch-up run, queued behind the others whatever the
 *   `concurrency` policy (that is what run_all asks for), at most `runAllMax`, then MISSED.
 *
 * `run_once` jobs have one fire time: after its tick, whatever the outcome, the job is done.
 * Pure: the same inputs give the same plan, so the scheduler's decisions can be tested as tables.
 */
export function planFires(job: PlannedJob, nowMs: number, active: ActiveExecutions, opts: PlanOptions): FirePlan {
  const due: Date[] = [];
  let next: Date | null = job.cursor;
  while (next !== null && next.getTime() <= nowMs && due.length < opts.maxTicks) {
    due.push(next);
    if (job.runOnce) {
      next = null;
      break;
    }
    next = nextFireTimes(job.schedule, { after: next, timezone: job.timezone, anchor: job.anchor, count: 1 })[0] ?? null;
  }
  const state: ActiveExecutions = { running: [...active.running], queued: [...active.queued] };
  const cancel = new Set<string>();
  const ticks: PlannedTick[] = [];
  const late = (t: Date) => nowMs - t.getTime() > opts.graceMs;
  const misfires = due.filter(late);
  const newestMisfire = misfires[misfires.length - 1];
  let catchUps = 0;
  let pendingId = 0;

  for (const fireTime of due) {
    if (job.paused) {
      ticks.push({ fireTime, outcome: TickOutcome.PAUSED, catchUp: false, run: false });
      continue;
    }
    const isMisfire = late(fireTime);
    if (isMisfire) {
      if (job.misfire === 'skip' || (job.misfire === 'run_once' && fireTime !== newestMisfire)) {
        ticks.push({ fireTime, outcome: TickOutcome.MISSED, catchUp: false, run: false });
        continue;
      }
      if (job.misfire === 'run_all') {
        if (catchUps >= opts.runAllMax) {
          ticks.push({ fireTime, outcome: TickOutcome.MISSED, catchUp: false, run: false });
        } else {
          catchUps++;
          state.queued.push(`planned:${pendingId++}`);
          ticks.push({ fireTime, outcome: TickOutcome.FIRED, catchUp: true, run: true });
        }
        continue;
      }
    }
    const decision = decideOverlap(job.concurrency, state);
    if (!decision.run) {
      ticks.push({ fireTime, outcome: TickOutcome.SKIPPED_OVERLAP, catchUp: isMisfire, run: false });
      continue;
    }
    if (decision.cancel.length > 0) {
      // Runs planned earlier in this same pass are replaced before they exist: they become skips.
      for (const t of ticks) {
        if (t.run) Object.assign(t, { outcome: TickOutcome.SKIPPED_OVERLAP, run: false });
      }
      for (const id of decision.cancel) if (!id.startsWith('planned:')) cancel.add(id);
      state.running = [];
      state.queued = [];
    }
    state.queued.push(`planned:${pendingId++}`);
    ticks.push({ fireTime, outcome: TickOutcome.FIRED, catchUp: isMisfire, run: true });
  }
  return { ticks, next, cancel: [...cancel] };
}
