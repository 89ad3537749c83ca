import type { Log } from '../util/log.js';
import { withTimeout } from '../util/timeout.js';

/** One dependency /readyz checks: resolves when it answers, throws (with why) when not. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
  /** Its failures are logged where they happen (the engine gate logs each change): Readiness does not repeat them. */
  logsItself?: boolean;
}

/** A process's readiness: `checks` maps each check to "ok" or why it failed. */
export interface ReadinessReport {
  ready: boolean;
  status: 'ready' | 'not ready';
  checks: Record<string, string>;
  /** The failed checks, by name. */
  failed: string[];
}

/** Each check's deadline: /readyz must answer well within a probe's own timeout. */
export const CHECK_TIMEOUT_MS = 2000;
/** How long a settled check's result answers later probes: a loop of probes costs a check a second. */
export const CHECK_CACHE_MS = 1000;
/** Longest reason /readyz gives for a failed check (the rest is cut, with an ellipsis). */
export const MAX_REASON_CHARS = 200;

/**
 * What /readyz tells anyone who asks (it needs no token): each check "ok" or "failed". Why a check
 * failed (a bucket name, a path, an address) is for the operator's log, not for the network
 * (security review L8; docs/design.md#configuration-checks).
 */
export function publicReport(r: ReadinessReport): Pick<ReadinessReport, 'status' | 'failed'> & { checks: Record<string, 'ok' | 'failed'> } {
  const checks = Object.fromEntries(Object.entries(r.checks).map(([name, result]) => [name, result === 'ok' ? 'ok' : 'failed'] as const));
  return { status: r.status, checks, failed: r.failed };
}

/** `text` cut to `max` characters, the last one an ellipsis when anything was cut. */
export function capText(text: string, max = MAX_REASON_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function reason(err: unknown): string {
  return capText((err instanceof Error ? err.message : String(err)) || 'failed');
}

/**
 * A process's readiness: every check answers within its deadline, and the process is not shutting
 * down. Checks run in parallel. A check is never run twice at once: a probe that comes while one is
 * in flight joins it, until that check itself settles (not merely until its deadline passed), so
 * probes of a hung dependency do not pile up connections; a probe joining a check already past its
 * deadline answers at once. A settled result also answers the probes of the next `cacheMs`.
 * Each change of a check's answer is logged once, with the reason (see publicReport).
 */
export class Readiness {
  private stopping = false;
  /** Per check: the answer of the run in flight (settles at the latest at its deadline). */
  private readonly inFlight = new Map<string, Promise<string>>();
  private readonly settled = new Map<string, { result: string; at: number }>();
  /** Per check: the last answer logged, so that a failure is logged when it starts, not per probe. */
  private readonly logged = new Map<string, string>();

  constructor(
    private readonly checks: ReadinessCheck[],
    private readonly timeoutMs = CHECK_TIMEOUT_MS,
    private readonly cacheMs = CHECK_CACHE_MS,
    private readonly log: Log = () => {},
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
    const pending = this.inFlight.get(c.name);
    if (pending !== undefined) return pending;
    const last = this.settled.get(c.name);
    if (last !== undefined && Date.now() - last.at < this.cacheMs) return Promise.resolve(last.result);
    const raw = Promise.resolve().then(() => c.check());
    const answer = withTimeout(raw, this.timeoutMs, c.name).then(() => 'ok', reason);
    this.inFlight.set(c.name, answer);
    void answer.then((result) => this.note(c, result));
    // The run ends when the check itself settles: only then may a later probe start another.
    raw.then(
      () => this.finished(c.name, 'ok'),
      (err: unknown) => this.finished(c.name, reason(err)),
    );
    return answer;
  }

  private note(c: ReadinessCheck, result: string): void {
    const before = this.logged.get(c.name) ?? 'ok';
    this.logged.set(c.name, result);
    if (result === before || c.logsItself) return;
    if (result === 'ok') this.log(`readiness: check "${c.name}" passes again`);
    else this.log(`readiness: check "${c.name}" fails: ${result}`, { level: 'warn' });
  }

  private finished(name: string, result: string): void {
    this.inFlight.delete(name);
    this.settled.set(name, { result, at: Date.now() });
  }
}
