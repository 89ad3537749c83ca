import { setTimeout as delay } from 'node:timers/promises';
import { withTimeout } from '../util/timeout.js';
import type { ContainerBackend, ContainerHandle } from './types.js';

/** How one container removal ended. */
export type Removal =
  | { gone: true; tries: number }
  /** Not confirmed gone: it may still run. `reason` says why the tries stopped. */
  | { gone: false; tries: number; reason: string; lastError: string };

export interface RemovalOptions {
  /**
   * Labels the container was created with: when a removal fails, the engine is asked for the
   * containers carrying them, and one it no longer lists is gone all the same.
   */
  labels: Record<string, string>;
  /**
   * Asked after each failed try: a reason to stop trying (the container is then left to the
   * lease expiry, the reaper and the next attempt's cleanup), or null to go on.
   */
  giveUp: () => string | null;
  /** The latest moment (epoch ms) for tries, or null for none (asked before each try and pause). */
  deadline?: () => number | null;
  /** Told about failed tries (the first, then every tenth). */
  log?: (message: string) => void;
  /** Longest one removal (or one listing) may take before it counts as failed (hung engine); default 30 s. */
  tryTimeoutMs?: number;
  /** Pause after the first failed try; doubles up to `maxPauseMs` (defaults 250 ms and 10 s). */
  firstPauseMs?: number;
  maxPauseMs?: number;
}

/**
 * Removes a container and resolves with whether it is confirmed gone: the engine removed it (or
 * said there was no such container), or no longer lists it. A failed or hung removal is retried
 * with backoff until it succeeds, `giveUp` says to stop, or the deadline passes. Never throws.
 *
 * "Gone" is what lets a caller hand the execution to a next attempt (never two at once); an
 * unconfirmed container must be assumed to still run.
 */
export async function removeUntilGone(backend: ContainerBackend, handle: ContainerHandle, opts: RemovalOptions): Promise<Removal> {
  const tryTimeoutMs = opts.tryTimeoutMs ?? 30_000;
  const maxPauseMs = opts.maxPauseMs ?? 10_000;
  let pause = opts.firstPauseMs ?? 250;
  let tries = 0;
  const left = (): number => {
    const deadline = opts.deadline?.() ?? null;
    return deadline === null ? Infinity : deadline - Date.now();
  };
  for (;;) {
    tries++;
    let lastError: string;
    try {
      await withTimeout(backend.destroy(handle), Math.max(1, Math.min(tryTimeoutMs, left())), 'container removal');
      return { gone: true, tries };
    } catch (err) {
      lastError = (err as Error).message ?? String(err);
    }
    // The removal failed; the engine may still say that the container no longer exists.
    try {
      const listed = await withTimeout(backend.list(opts.labels), Math.max(1, Math.min(tryTimeoutMs, left())), 'container listing');
      if (!listed.some((c) => c.id === handle.id)) return { gone: true, tries };
    } catch {
      // The engine does not answer: nothing is confirmed.
    }
    if (tries === 1 || tries % 10 === 0) opts.log?.(`removing container ${handle.id.slice(0, 12)} failed (try ${tries}): ${lastError}; retrying`);
    const reason = opts.giveUp() ?? (left() <= 0 ? 'the shutdown deadline passed' : null);
    if (reason !== null) return { gone: false, tries, reason, lastError };
    const wait = Math.min(pause, left());
    if (wait > 0) await delay(wait);
    pause = Math.min(pause * 2, maxPauseMs);
    if (left() <= 0) {
      // One last try at the deadline would not be bounded by it: stop here.
      return { gone: false, tries, reason: 'the shutdown deadline passed', lastError };
    }
  }
}
