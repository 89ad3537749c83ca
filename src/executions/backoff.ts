/**
 * Kiln's one backoff rule: `baseMs` doubled for each try after the first, capped at `maxMs`.
 * Retries of failed runs, archive tries while the store fails, and waits after infrastructure
 * failures all use it, each with its own base and cap.
 */
export function backoffMs(baseMs: number, tries: number, maxMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, tries - 1), maxMs);
}

/** Longest wait before a retry of a failed run. */
export const RETRY_MAX_MS = 10 * 60_000;

/** Exponential backoff of the n-th retry (1-based), capped at 10 minutes. */
export function retryDelayMs(baseMs: number, retryNumber: number): number {
  return backoffMs(baseMs, retryNumber, RETRY_MAX_MS);
}
