import { withTimeout } from './timeout.js';

/** One dependency /readyz checks: resolves when it answers, throws (with why) when not. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

/** What /readyz answers: `checks` maps each check to "ok" or why it failed. */
export interface ReadinessReport {
  ready: boolean;
  status: 'ready' | 'not ready';
  checks: Record<string, string>;
  /** The failed checks, by name. */
  failed: string[];
}

/** Each check's deadline: /readyz must answer well within a probe's own timeout. */
export const CHECK_TIMEOUT_MS = 2000;

/**
 * A process's readiness: every check answers within its deadline, and the process is not shutting
 * down. Checks run in parallel; a check still in flight from an earlier probe is joined rather
 * than started again, so probes of a hung dependency do not pile up connections.
 */
export class Readiness {
  private stopping = false;
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(
    private readonly checks: ReadinessCheck[],
    private readonly timeoutMs = CHECK_TIMEOUT_MS,
  ) {}

  /** From now on the process answers 503: it is shutting down. */
  shutDown(): void {
    this.stopping = true;
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  async report(): Promise<ReadinessReport> {
    if (this.stopping) return { ready: false, status: 'not ready', checks: { shutdown: 'shutting down' }, failed: ['shutdown'] };
    const results = await Promise.all(this.checks.map(async (c) => [c.name, await this.run(c)] as const));
    const failed = results.filter(([, r]) => r !== 'ok').map(([name]) => name);
    const ready = failed.length === 0;
    return { ready, status: ready ? 'ready' : 'not ready', checks: Object.fromEntries(results), failed };
  }

  private run(c: ReadinessCheck): Promise<string> {
    let pending = this.inFlight.get(c.name);
    if (pending === undefined) {
      pending = withTimeout(Promise.resolve().then(() => c.check()), this.timeoutMs, c.name)
        .then(
          () => 'ok',
          (err: unknown) => (err instanceof Error ? err.message : String(err)) || 'failed',
        )
        .finally(() => this.inFlight.delete(c.name));
      this.inFlight.set(c.name, pending);
    }
    return pending;
  }
}
