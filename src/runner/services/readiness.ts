import { setTimeout as delay } from 'node:timers/promises';
import type { ReadyCheck } from '../../jobfile/services.js';
import type { ContainerState } from '../types.js';

/** Pause between two tries of a readiness check: the gap a step waits after a service is ready. */
export const READY_POLL_MS = 50;

/** A service stopped, or did not pass its readiness check in time: the run fails (not the infrastructure). */
export class ServiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** How a readiness wait ended, when not ready. */
export type NotReady = { kind: 'timeout' } | { kind: 'exited'; exitCode: number | null };

/** What a wait for one service needs. */
export interface ReadinessProbe {
  /** One try of the check: true when it passed. May throw (the service stopped under it). */
  attempt: (budgetMs: number, signal: AbortSignal) => Promise<boolean>;
  state: () => Promise<ContainerState>;
}

/**
 * Tries `check` every READY_POLL_MS until it passes, the service stops, `timeoutMs` (counted from
 * `since`) passes, or `signal` aborts (which rejects with its reason). Resolves null once ready.
 * A check that throws, or fails, is followed by a look at the container: a service that exited
 * is not waited for any longer.
 */
export async function waitUntilReady(
  check: ReadyCheck | null,
  probe: ReadinessProbe,
  since: number,
  signal: AbortSignal,
): Promise<NotReady | null> {
  const deadline = since + (check?.timeoutMs ?? 0);
  for (;;) {
    signal.throwIfAborted();
    const left = deadline - Date.now();
    let passed = false;
    if (check === null) passed = true;
    else if (left > 0) passed = await probe.attempt(left, signal).catch(() => false);
    signal.throwIfAborted();
    const state = await probe.state();
    if (!state.running) return { kind: 'exited', exitCode: state.exitCode };
    if (passed) return null;
    if (Date.now() >= deadline) return { kind: 'timeout' };
    await delay(Math.min(READY_POLL_MS, Math.max(0, deadline - Date.now())), undefined, { signal });
  }
}

/** How a check reads in messages: `tcp 5432` or `run "pg_isready"`. */
export function describeCheck(check: ReadyCheck | null): string {
  if (check === null) return 'its container running';
  return 'tcp' in check ? `tcp ${check.tcp}` : `run ${JSON.stringify(check.run)}`;
}
