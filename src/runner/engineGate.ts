import type { Log } from '../util/log.js';
import { TimeoutError, withTimeout } from '../util/timeout.js';
import type { ContainerBackend } from './types.js';

/** How often an {@link EngineGate} looks, and how long it waits for an answer. */
export interface EngineGateOptions {
  /** Between checks while the engine answers (default 5 s): how late an idle worker notices it gone. */
  upIntervalMs?: number;
  /** Between checks while it does not (default 1 s): how late the worker notices it back. */
  downIntervalMs?: number;
  /** Longest a check waits for the ping (default 5 s); a slower answer counts as none. */
  timeoutMs?: number;
}

/** Told of each change: true when the engine answers again, false when it stopped answering. */
export type EngineListener = (up: boolean) => void;

const DEFAULTS: Required<EngineGateOptions> = { upIntervalMs: 5_000, downIntervalMs: 1_000, timeoutMs: 5_000 };

/**
 * Whether this worker's container engine can run work: the engine's ping, checked on an interval
 * (often while it does not answer, seldom while it does) and at once when asked (a run that broke
 * on the infrastructure, a readiness probe). A worker takes executions only while the gate is up:
 * without an engine a claimed run could only fail, and would spend its attempts in a second.
 *
 * Each change is logged once, naming where the engine was looked for, and told to the listeners
 * (the worker pauses and resumes its execution runner). Until the first check the gate is not up.
 */
export class EngineGate {
  private state: 'unknown' | 'up' | 'down' = 'unknown';
  private why: string | null = null;
  private changedAt = Date.now();
  /** Start of the latest check that found the engine down (epoch ms). */
  private lastDownCheckAt = -Infinity;
  private current: Promise<boolean> | null = null;
  private queued: Promise<boolean> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly listeners = new Set<EngineListener>();
  private readonly options: Required<EngineGateOptions>;

  constructor(
    private readonly backend: Pick<ContainerBackend, 'ping' | 'description'>,
    private readonly log: Log,
    options: EngineGateOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Whether the latest check found the engine answering. */
  get up(): boolean {
    return this.state === 'up';
  }

  /** Why the engine cannot be used, naming where it was looked for; null while it answers. */
  get reason(): string | null {
    if (this.state === 'up') return null;
    return this.why ?? `${this.backend.description} has not been checked yet`;
  }

  /** Checks once now (a failure is logged at once), then keeps checking until `stop`. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  /**
   * A check that starts now or, when one is in flight, right after it (which may have started
   * before whatever made the caller ask); callers meanwhile share it. Resolves with whether the
   * engine answers; never rejects.
   */
  check(): Promise<boolean> {
    if (this.current === null) {
      this.current = this.probe().finally(() => {
        this.current = null;
      });
      return this.current;
    }
    this.queued ??= this.current.then(() => {
      this.queued = null;
      return this.check();
    });
    return this.queued;
  }

  /**
   * Whether a check that started at `t` (epoch ms) or later found the engine down, or it is down
   * now: a run that broke at `t` broke because the engine was gone, not because of the run.
   */
  downSince(t: number): boolean {
    return this.state === 'down' || this.lastDownCheckAt >= t;
  }

  /** Calls `listener` on every change from now on; returns the unsubscribe. */
  onChange(listener: EngineListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  private async probe(): Promise<boolean> {
    const startedAt = Date.now();
    try {
      await withTimeout(this.backend.ping(), this.options.timeoutMs, 'the engine ping');
    } catch (err) {
      this.lastDownCheckAt = startedAt;
      this.become('down', this.describeFailure(err));
      return false;
    }
    this.become('up', null);
    return true;
  }

  private describeFailure(err: unknown): string {
    const where = this.backend.description;
    if (err instanceof TimeoutError) return `${where} does not answer within ${this.options.timeoutMs} ms`;
    // The innermost message says what happened (`connect ENOENT /var/run/docker.sock`); the
    // backend's own wrapping would only repeat where.
    const e = err as Error;
    const root = e?.cause instanceof Error ? e.cause.message : (e?.message ?? String(err));
    return `${where} is not reachable (is it running?): ${root}`;
  }

  private become(state: 'up' | 'down', why: string | null): void {
    const was = this.state;
    this.why = why;
    if (state === was) return;
    const downForS = Math.round((Date.now() - this.changedAt) / 1000);
    this.state = state;
    this.changedAt = Date.now();
    if (state === 'down') {
      this.log(`${why}; this worker takes no executions until it answers`, { level: 'warn' });
    } else if (was === 'down') {
      this.log(`${this.backend.description} answers again after ${downForS} s; this worker takes executions again`);
    }
    for (const listener of this.listeners) {
      try {
        listener(state === 'up');
      } catch (err) {
        this.log(`engine gate: a listener failed: ${(err as Error).message}`, { level: 'error', err });
      }
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    const ms = this.state === 'up' ? this.options.upIntervalMs : this.options.downIntervalMs;
    this.timer = setTimeout(() => void this.check().finally(() => this.schedule()), ms);
    this.timer.unref();
  }
}
