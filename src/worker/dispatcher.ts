import type pg from 'pg';
import { claimNext } from '../executions/claim.js';
import { claimWithFinishes } from '../executions/finish.js';
import type { ClaimedExecution } from '../executions/fence.js';
import { QUEUED_CHANNEL } from '../executions/queue.js';
import { PgListener } from '../events/PgListener.js';
import type { Log } from '../util/log.js';
import { Soon } from '../util/soon.js';

/** What the dispatcher needs. */
export interface DispatcherOptions {
  pool: pg.Pool;
  workerId: string;
  /** Executions this process runs at once: its slots. */
  concurrency: number;
  leaseMs: number;
  /** Most RUNNING executions per owner, cluster-wide; 0 = no cap. */
  ownerCap: number;
  /** How often it claims without being told (future `run_at`s, missed notifications). */
  pollIntervalMs: number;
  /**
   * Runs one claimed execution to its end; never rejects (a run records its own failures). It may
   * call `slotFree` once its work is over and only its outcome is left to write: the slot then
   * takes the next execution while the outcome is written.
   */
  run(claimed: ClaimedExecution, slotFree: () => void): Promise<void>;
  /** False while this worker cannot run work (its engine is unreachable): it claims nothing then. */
  canClaim?: () => boolean;
  log: Log;
}

/**
 * Runs whose work is over but whose outcome is not yet written, at most this many per slot. Past
 * it the worker claims nothing until outcomes are written: claims that outrun the writing of
 * outcomes (10,000 noop runs due at once) would otherwise leave thousands of finished runs
 * RUNNING in the table, held in memory, and run again after a crash.
 */
const RECORDING_PER_SLOT = 4;

/** After a failed claim (Postgres unreachable), the next try waits this long, doubling up to the poll interval. */
const FIRST_ERROR_WAIT_MS = 100;

/**
 * Fills this worker's slots with claimed executions (docs/design.md#dispatch). It claims when
 * told that work was queued (LISTEN `kiln_queued`), when a run's work is over (its slot is free:
 * the slots freed in one turn are claimed for together), when a run has ended (the job's next
 * execution may now be claimable), and every poll interval. One claim at a time: a wake-up
 * during a claim makes it claim again right after, so no wake-up is lost.
 */
export class Dispatcher {
  /** This dispatcher's runs, by execution id, until they have ended (outcome written). */
  private readonly running = new Map<string, Promise<void>>();
  /** The runs that hold a slot: those whose work is not over (see DispatcherOptions.run). */
  private readonly slots = new Set<string>();
  /** Wakes once this turn of the event loop is over (see launch). */
  private readonly soon = new Soon(() => this.wake());
  private detachClaims: () => void = () => {};
  private readonly listener: PgListener;
  private timer: NodeJS.Timeout | null = null;
  private claiming = false;
  private again = false;
  private stopped = false;
  private errorWaitMs = FIRST_ERROR_WAIT_MS;
  private failing = false;

  constructor(private readonly o: DispatcherOptions) {
    this.listener = new PgListener({
      connection: { ...o.pool.options, application_name: `kiln dispatcher ${o.workerId}`.slice(0, 63) },
      channels: [QUEUED_CHANNEL],
      onNotification: () => this.wake(),
      onReconnect: () => this.wake(),
      log: o.log,
    });
  }

  /** Starts listening and claiming; resolves once LISTEN is in force. */
  async start(): Promise<void> {
    await this.listener.start();
    // A run that ends other than by recording its outcome (handed back, abandoned) holds its slot
    // until it has ended: that slot is filled in the statement that records the end (see
    // ClaimSink). With a per-owner cap, claims take the cap's lock first: they stay separate.
    if (this.o.ownerCap === 0) {
      this.detachClaims = claimWithFinishes(this.o.pool, {
        workerId: this.o.workerId,
        leaseMs: this.o.leaseMs,
        wanted: (ending) => (this.stopped || !(this.o.canClaim?.() ?? true) ? 0 : ending.filter((id) => this.slots.has(id)).length),
        take: (claimed) => {
          for (const c of claimed) this.launch(c);
        },
      });
    }
    this.timer = setInterval(() => this.wake(), this.o.pollIntervalMs);
    this.timer.unref();
    this.wake();
  }

  /** How many executions this dispatcher's runs hold now. */
  get size(): number {
    return this.running.size;
  }

  /** Claims as much work as free slots allow (now, or right after the claim in flight). */
  wake(): void {
    if (this.stopped) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    this.claiming = true;
    void this.fill().finally(() => {
      this.claiming = false;
      if (this.again && !this.stopped) {
        this.again = false;
        this.wake();
      }
    });
  }

  /**
   * Stops claiming at once; resolves when every run it started has ended (the caller decides how
   * long to wait: see startWorker's drain). Idempotent.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.detachClaims();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.listener.stop().catch(() => {});
    // A finish in flight may still hand over runs it claimed: those are waited for too.
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  private async fill(): Promise<void> {
    while (!this.stopped && (this.o.canClaim?.() ?? true)) {
      const free = Math.min(this.o.concurrency - this.slots.size, this.o.concurrency * (1 + RECORDING_PER_SLOT) - this.running.size);
      if (free <= 0) return;
      let claimed: ClaimedExecution[];
      try {
        claimed = await claimNext(this.o.pool, { workerId: this.o.workerId, leaseMs: this.o.leaseMs, limit: free, ownerCap: this.o.ownerCap });
        this.recovered();
      } catch (err) {
        await this.failed(err as Error);
        return;
      }
      // Claimed while stopping, these runs still go: the drain waits for them like for any other.
      for (const c of claimed) this.launch(c);
      if (claimed.length < free) return;
    }
  }

  private launch(claimed: ClaimedExecution): void {
    const slotFree = () => {
      if (this.slots.delete(claimed.id)) this.soon.request();
    };
    this.slots.add(claimed.id);
    const run = this.o.run(claimed, slotFree).catch((err: Error) => {
      this.o.log(`execution ${claimed.id}: run ended with an unexpected error: ${err.message}`, { level: 'error', executionId: claimed.id, err });
    });
    this.running.set(claimed.id, run);
    void run.finally(() => {
      if (this.running.get(claimed.id) === run) this.running.delete(claimed.id);
      this.slots.delete(claimed.id);
      // A slot is free, and the job's next execution may now be claimable. The runs handed over
      // together free their slots in the same turn: one claim, once it is over, fills them all.
      this.soon.request();
    });
  }

  private async failed(err: Error): Promise<void> {
    if (!this.failing) this.o.log(`dispatcher: claiming failed (${err.message}); trying again with backoff`, { level: 'warn', err });
    this.failing = true;
    await new Promise((resolve) => setTimeout(resolve, this.errorWaitMs).unref());
    this.errorWaitMs = Math.min(this.errorWaitMs * 2, this.o.pollIntervalMs);
    this.again = true;
  }

  private recovered(): void {
    if (this.failing) this.o.log('dispatcher: claiming works again');
    this.failing = false;
    this.errorWaitMs = FIRST_ERROR_WAIT_MS;
  }
}
