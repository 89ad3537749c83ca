/**
 * Kiln's one backoff rule: `baseMs` doubled for each try after the first, capped at `maxMs`.
 * Retries of failed runs, archive tries while the store fails, waits after infrastructure
 * failures and notification deliveries all use it, each with its own base and cap.
 */
export function backoffMs(baseMs: number, tries: number, maxMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, tries - 1), maxMs);
}
