import { backoffMs } from '../util/backoff.js';

/** Kiln's one backoff rule lives in util/backoff.ts (notify/ uses it too). */
export { backoffMs };

/** Longest wait before a retry of a failed run. */
export const RETRY_MAX_MS = 10 * 60_000;

/** Exponential backoff of the n-th retry (1-based), capped at 10 minutes. */
export function retryDelayMs(baseMs: number, retryNumber: number): number {
  return backoffMs(baseMs, retryNumber, RETRY_MAX_MS);
}
