/** Thrown by {@link withTimeout} when the deadline passes first. */
export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} timed out after ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Settles with `promise`, or rejects with a TimeoutError after `ms`. The work itself goes on (a
 * promise cannot be cancelled): callers that probe repeatedly should coalesce their probes.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Resolves true when `promise` settles within `ms`, false otherwise (it is left running). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  try {
    await withTimeout(
      promise.then(
        () => undefined,
        () => undefined,
      ),
      ms,
      'wait',
    );
    return true;
  } catch {
    return false;
  }
}

/** Sleeps until the wall clock reads `at` (epoch ms; timers may fire a millisecond early). */
export async function sleepUntil(at: number): Promise<void> {
  for (let left = at - Date.now(); left > 0; left = at - Date.now()) await new Promise((resolve) => setTimeout(resolve, left));
}
