import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Orm } from '../db/orm.js';
import { FINAL_STATUSES, type Execution } from '../entities/index.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { ownerKey, type JobChangeEntry } from '../executions/signals.js';
import { CHANNELS, parseExecutionState, parseJobEvent, parseLogEvent, type ExecutionStateEvent, type JobEvent } from './channels.js';
import { loadExecutionSnapshot } from './executionSnapshot.js';
import { Interest } from './Interest.js';
import { DEFAULT_TAIL_LIMITS, LogTail, type LogTailLimits } from './LogTail.js';
import { PgListener } from './PgListener.js';
import { StoredLogReader } from '../logs/StoredLogReader.js';

/** What the hub needs; built once per API process. */
export interface EventHubOptions {
  orm: Orm;
  pool: pg.Pool;
  store: ArtifactStore;
  log: (message: string) => void;
  /**
   * How often followed executions are re-read from Postgres, whatever NOTIFY says: the safety
   * net for notifications lost while the listening connection was down. Default 5 s.
   */
  sweepMs?: number;
  tailLimits?: Partial<LogTailLimits>;
}

/** Who wants execution updates, and where to put them. */
export interface ExecutionWatcher {
  owner: string;
  /** Only this job's executions (ownership checked by the caller). */
  jobId: string | null;
  /** Only this execution (ownership checked by the caller). */
  executionId: string | null;
  /** The start mark of its {@link EventHub.follow}: nothing that arrives before it is delivered. */
  startMark: string | null;
  /** Called once per matching event, in order per execution. Must not block. */
  deliver(snapshot: Execution): void;
}

/** Who wants job events (docs/design.md#job-events), and where to put them. */
export interface JobWatcher {
  owner: string;
  /** Only this job's events (ownership checked by the caller). */
  jobId: string | null;
  /** The start mark of its {@link EventHub.follow}: nothing that arrives before it is delivered. */
  startMark: string | null;
  /** Called once per matching job change, in commit order. Must not block. */
  deliver(change: JobChangeEntry): void;
  /** The listening connection was lost: changes may have gone unsaid since (job events have no stored state to re-read). */
  lost(): void;
}

/** A subscriber's hold on an execution's shared log tail; release it when done. */
export interface TailLease {
  tail: LogTail;
  release(): void;
}

/**
 * The process's side of the event bus: one LISTEN connection, fanned out to every subscriber
 * of this API process. Log subscribers share one {@link LogTail} per execution; execution
 * watchers get one snapshot per state event, loaded once per event whatever their number.
 */
export class EventHub {
  private readonly tails = new Map<string, LogTail>();
  private readonly watchers = new Set<ExecutionWatcher>();
  /** Job watchers by ownerKey(owner), the form the events name the owner in. */
  private readonly jobWatchers = new Map<string, Set<JobWatcher>>();
  /** Per execution, the chain of events being loaded and delivered, to keep their order. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly listener: PgListener;
  private readonly limits: LogTailLimits;
  /** The owners this process's subscribers follow (the event triggers notify only for those). */
  readonly interest: Interest;
  /** Start marks notified but not yet received: their watchers get nothing yet (see follow). */
  private readonly unmarked = new Set<string>();
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;

  private constructor(private readonly opts: EventHubOptions) {
    this.limits = { ...DEFAULT_TAIL_LIMITS, ...opts.tailLimits };
    this.interest = new Interest(opts.pool, opts.log);
    this.listener = new PgListener({
      connection: opts.pool.options,
      channels: [CHANNELS.executionState, CHANNELS.log, CHANNELS.job, CHANNELS.start],
      onNotification: (channel, payload) => this.onNotification(channel, payload),
      onReconnect: () => {
        // A mark notified while the connection was down is gone; the replay below re-reads the state.
        this.unmarked.clear();
        void this.interest.renew();
        for (const set of this.jobWatchers.values()) for (const w of [...set]) w.lost();
        void this.sweep(true);
      },
      log: opts.log,
    });
  }

  /** Starts listening; resolves once LISTEN is in force. */
  static async start(opts: EventHubOptions): Promise<EventHub> {
    const hub = new EventHub(opts);
    await hub.listener.start();
    hub.interest.start();
    hub.sweeper = setInterval(() => void hub.sweep(false), opts.sweepMs ?? 5000);
    hub.sweeper.unref();
    return hub;
  }

  async stop(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    await this.listener.stop();
    await this.interest.stop();
    for (const tail of this.tails.values()) tail.wake();
    await Promise.allSettled([...this.chains.values()]);
  }

  /** Number of executions whose log tail this process holds (metrics, tests). */
  get tailCount(): number {
    return this.tails.size;
  }

  /** The shared tail of an execution's log, created on first use and dropped with its last user. */
  acquireTail(executionId: string): TailLease {
    let tail = this.tails.get(executionId);
    if (tail === undefined) {
      tail = new LogTail(this.opts.pool, executionId, this.limits, (err) => this.opts.log(`log tail ${executionId}: ${err.message}`));
      this.tails.set(executionId, tail);
    }
    tail.refs++;
    const held = tail;
    let released = false;
    return {
      tail: held,
      release: () => {
        if (released) return;
        released = true;
        if (--held.refs === 0 && this.tails.get(executionId) === held) this.tails.delete(executionId);
      },
    };
  }

  /** A reader of an execution's stored log (Postgres, else the archive). */
  storedLogReader(executionId: string): StoredLogReader {
    return new StoredLogReader(this.opts.pool, this.opts.store, executionId);
  }

  /**
   * Follows `owner` for a subscription that starts now (docs/design.md#live-events). A change
   * committed just before may still be on its way through the listener; the start mark, notified
   * with the interest row, tells it apart: watchers given `startMark` receive only what arrives
   * after the mark, which is what was committed after the subscription began.
   */
  async follow(owner: string): Promise<{ startMark: string; release: () => void }> {
    const startMark = randomUUID();
    this.unmarked.add(startMark);
    try {
      const unfollow = await this.interest.hold(owner, startMark);
      return {
        startMark,
        release: () => {
          this.unmarked.delete(startMark);
          unfollow();
        },
      };
    } catch (err) {
      this.unmarked.delete(startMark);
      throw err;
    }
  }

  /** Whether a watcher's subscription has begun (its start mark, if any, was received). */
  private started(w: { startMark: string | null }): boolean {
    return w.startMark === null || !this.unmarked.has(w.startMark);
  }

  /** Registers a watcher of execution updates; returns its removal. */
  watchExecutions(watcher: ExecutionWatcher): () => void {
    this.watchers.add(watcher);
    return () => void this.watchers.delete(watcher);
  }

  /** Registers a watcher of the owner's job events; returns its removal. */
  watchJobs(watcher: JobWatcher): () => void {
    const key = ownerKey(watcher.owner);
    const set = this.jobWatchers.get(key) ?? new Set<JobWatcher>();
    this.jobWatchers.set(key, set);
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0 && this.jobWatchers.get(key) === set) this.jobWatchers.delete(key);
    };
  }

  /** Job events carry all they say: delivered at once, in the order of the notifications. */
  private onJobEvent(event: JobEvent): void {
    const watchers = this.jobWatchers.get(event.ownerKey);
    if (watchers === undefined) return;
    for (const w of [...watchers]) {
      if (!this.started(w)) continue;
      for (const change of event.jobs) if (w.jobId === null || w.jobId === change.id) w.deliver(change);
    }
  }

  private onNotification(channel: string, payload: string): void {
    try {
      if (channel === CHANNELS.log) {
        const event = parseLogEvent(payload);
        this.tails.get(event.executionId)?.announce(event.lastSeq);
      } else if (channel === CHANNELS.executionState) {
        this.onExecutionState(parseExecutionState(payload));
      } else if (channel === CHANNELS.job) {
        this.onJobEvent(parseJobEvent(payload));
      } else if (channel === CHANNELS.start) {
        this.unmarked.delete(payload);
      }
    } catch (err) {
      this.opts.log(`event hub: ignoring a ${channel} notification: ${(err as Error).message}`);
    }
  }

  private onExecutionState(event: ExecutionStateEvent): void {
    const tail = this.tails.get(event.executionId);
    // The runner stores the last lines before it records the final status.
    if (tail !== undefined && FINAL_STATUSES.has(event.status)) tail.finish(event.lastSeq);
    const matching = [...this.watchers].filter((w) => this.started(w) && matches(w, event));
    if (matching.length === 0) return;
    const previous = this.chains.get(event.executionId) ?? Promise.resolve();
    const next = previous
      .then(() => this.deliver(event, matching))
      .catch((err: Error) => this.opts.log(`event hub: execution ${event.executionId}: ${err.message}`));
    this.chains.set(event.executionId, next);
    void next.finally(() => {
      if (this.chains.get(event.executionId) === next) this.chains.delete(event.executionId);
    });
  }

  private async deliver(event: ExecutionStateEvent, watchers: ExecutionWatcher[]): Promise<void> {
    const snapshot = await loadExecutionSnapshot(this.opts.orm, event);
    if (snapshot === null) return;
    for (const w of watchers) {
      // Owner-wide watchers matched a payload without an owner (too long to carry): check now.
      if (w.owner !== snapshot.owner || !this.watchers.has(w)) continue;
      w.deliver(snapshot);
    }
  }

  /**
   * Re-reads every followed execution: announces stored lines, ends finished runs, and wakes
   * every waiting subscriber. After a lost connection (`replay`), watchers of one execution
   * also get its current state, since the events in between are gone.
   */
  private async sweep(replay: boolean): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const ids = [...this.tails.keys()];
      if (ids.length > 0) {
        const { rows } = await this.opts.pool.query<{ id: string; last_seq: number; final: boolean }>(
          `select e.id, e.last_seq, e.status in ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT') as final
             from executions e where e.id = any($1::uuid[])`,
          [ids],
        );
        const found = new Map(rows.map((r) => [r.id, r]));
        for (const id of ids) {
          const tail = this.tails.get(id);
          if (tail === undefined) continue;
          const row = found.get(id);
          // A deleted execution has nothing more to say: end its followers.
          if (row === undefined) tail.finish(tail.cachedTo);
          else if (row.final) tail.finish(row.last_seq);
          else tail.announce(row.last_seq);
          tail.wake();
        }
      }
      if (replay) await this.replayWatchedExecutions();
    } catch (err) {
      this.opts.log(`event hub: sweep failed: ${(err as Error).message}`);
    } finally {
      this.sweeping = false;
    }
  }

  private async replayWatchedExecutions(): Promise<void> {
    const ids = [...new Set([...this.watchers].map((w) => w.executionId).filter((id): id is string => id !== null))];
    for (const id of ids) {
      const { rows } = await this.opts.pool.query<{ payload: string | null }>(`select kiln_execution_state_payload($1) as payload`, [id]);
      if (rows[0]?.payload) this.onExecutionState(parseExecutionState(rows[0].payload));
    }
  }
}

function matches(w: ExecutionWatcher, event: ExecutionStateEvent): boolean {
  if (w.executionId !== null) return w.executionId === event.executionId;
  if (w.jobId !== null) return w.jobId === event.jobId;
  return event.owner === null || event.owner === w.owner;
}
