/** Exponential backoff of the n-th retry (1-based), capped at 10 minutes. */
export function retryDelayMs(baseMs: number, retryNumber: number): number {
  return Math.min(baseMs * 2 ** (retryNumber - 1), 10 * 60_000);
}

