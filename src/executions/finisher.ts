import type pg from 'pg';
import { claimCtes, toClaimed, type ClaimRow } from './claim.js';
import type { ClaimedExecution } from './fence.js';
import { FINISH_CTES, finishParams, type Finish } from './finishMany.js';
import { Soon } from '../util/soon.js';

/**
 * Where the executions a finish claims go: one worker's dispatcher (docs/design.md#dispatch).
 * A slot that a run frees is filled in the statement that records the run's end, so a busy
 * worker turns a slot over in one round trip instead of two (finish, then claim).
 */
export interface ClaimSink {
  workerId: string;
  leaseMs: number;
  /** How many executions to claim in the statement that ends the runs of these executions (0: none). */
  wanted(ending: readonly string[]): number;
  /**
   * Takes what that statement claimed, before the ending runs learn that they were recorded: the
   * new runs hold their slots by then, so the slots are never counted free twice.
   */
  take(claimed: ClaimedExecution[]): void;
}

/** Finishes written together at most. */
const MAX_BATCH = 64;
/** A statement sent this recently means a busy worker: ends wait GATHER_MS for others (see gather). */
const BUSY_MS = 50;
const GATHER_MS = 20;
/** Ends enough for one statement: they go at once, gathering or not. */
const FULL_ENOUGH = MAX_BATCH / 2;

/** FINISH_CTES ($1-$20) and an uncapped claim ($21 worker, $22 lease, $23 limit) in one statement. */
const FINISH_AND_CLAIM = `with recursive ${FINISH_CTES}, ${claimCtes({ worker: 21, lease: 22, limit: 23, cap: null })}
select (select coalesce(json_agg(id), '[]') from done) as finished,
       (select coalesce(json_agg(c), '[]') from claimed c) as claimed`;

const FINISH_ONLY = `with ${FINISH_CTES}
select coalesce(json_agg(id), '[]') as finished, '[]'::json as claimed from done`;

interface Waiting {
  finish: Finish;
  resolve(recorded: boolean): void;
  reject(err: Error): void;
}

interface Written {
  finished: string[];
  claimed: ClaimRow[];
}

/**
 * Groups the finishes of one process's runs: those of one turn of the event loop go together, and
 * those that come while a statement is in flight go together in the next (so a lone run waits for
 * no timer, and under load one commit records many runs). Each caller learns whether its outcome was recorded. When a
 * worker has said where claims go (`attach`), the statement also claims as many executions as
 * that worker wants for the slots the batch frees.
 */
export class Finisher {
  private waiting: Waiting[] = [];
  private busy = false;
  private readonly sender = new Soon(() => this.pump());
  private lastSentAt = 0;
  private readonly sinks = new Map<string, ClaimSink>();

  constructor(private readonly pool: pg.Pool) {}

  /** Claims for `sink.workerId` go to `sink` from now on; returns the detach. */
  attach(sink: ClaimSink): () => void {
    this.sinks.set(sink.workerId, sink);
    return () => {
      if (this.sinks.get(sink.workerId) === sink) this.sinks.delete(sink.workerId);
    };
  }

  finish(finish: Finish): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ finish, resolve, reject });
      this.gather();
    });
  }

  /**
   * Sends the waiting ends once this turn of the event loop is over, so that the runs ending in
   * the same turn (those one statement handed over end together) share a statement: the first
   * end no longer goes alone. It costs a lone run no timer, only the rest of the turn; measured,
   * 972-1,103 -> 1,235-1,420 noop runs a second, a third fewer statements.
   */
  private gather(): void {
    if (this.busy || this.waiting.length === 0) return;
    // Busy (a statement sent within BUSY_MS), the ends wait GATHER_MS for more: a burst's outcomes
    // go in a few large statements, leaving the cores to the claims that start its runs, while a
    // lone run's end still waits for no timer. FULL_ENOUGH ends go at once, even while gathering:
    // waiting longer only holds back a worker whose claims wait for its outcomes (see the
    // dispatcher's bound).
    const gatherMore = Date.now() - this.lastSentAt < BUSY_MS && this.waiting.length < FULL_ENOUGH;
    this.sender.request(gatherMore ? GATHER_MS : 0);
  }

  private pump(): void {
    if (this.busy || this.waiting.length === 0) return;
    this.lastSentAt = Date.now();
    const batch = this.waiting.splice(0, MAX_BATCH);
    this.busy = true;
    this.write(batch.map((w) => w.finish))
      .then(
        ({ written, sink, sentAt }) => {
          if (sink && written.claimed.length > 0) sink.take(written.claimed.map((r) => toClaimed(r, sink.workerId, sentAt)));
          const recorded = new Set(written.finished);
          for (const w of batch) w.resolve(recorded.has(w.finish.fence.id));
        },
        (err: Error) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(() => {
        // One statement at a time: a second in flight measured slower (smaller batches, more
        // Postgres work per run), and the runs that end meanwhile make the next batch.
        this.busy = false;
        this.gather();
      });
  }

  /** Writes one batch, claiming for the sink of its worker when that worker wants executions. */
  private async write(finishes: Finish[]): Promise<{ written: Written; sink: ClaimSink | null; sentAt: number }> {
    const sink = this.sinkFor(finishes);
    const limit = sink?.wanted(finishes.filter((f) => f.fence.workerId === sink.workerId).map((f) => f.fence.id)) ?? 0;
    const sentAt = Date.now();
    try {
      return { written: await this.query(finishes, sink && limit > 0 ? { sink, limit } : null), sink, sentAt };
    } catch (err) {
      // The claim is optional, the ends are not: whatever failed the statement (another worker's
      // claim of a job this one chose, a unique violation; a deadlock between two workers' claims
      // waiting on each other's new index entries), the ends are written again, alone. An error
      // that fails them too (Postgres unreachable) goes to the runs.
      if (limit === 0) throw err;
      return { written: await this.query(finishes, null), sink: null, sentAt };
    }
  }

  /** The sink of the worker with the most finishes in the batch (a process usually has one). */
  private sinkFor(finishes: Finish[]): ClaimSink | null {
    if (this.sinks.size === 0) return null;
    const counts = new Map<string, number>();
    for (const f of finishes) counts.set(f.fence.workerId, (counts.get(f.fence.workerId) ?? 0) + 1);
    const [top] = [...counts].filter(([w]) => this.sinks.has(w)).sort((a, b) => b[1] - a[1]);
    return top ? this.sinks.get(top[0])! : null;
  }

  private async query(finishes: Finish[], claim: { sink: ClaimSink; limit: number } | null): Promise<Written> {
    const values = finishParams(finishes, true);
    // Named: each connection plans each statement once, not at every batch.
    const { rows } = claim
      ? await this.pool.query<Written>({
          name: 'kiln_finish_and_claim', text: FINISH_AND_CLAIM, values: [...values, claim.sink.workerId, claim.sink.leaseMs, claim.limit],
        })
      : await this.pool.query<Written>({ name: 'kiln_finish_many', text: FINISH_ONLY, values });
    return rows[0]!;
  }
}
