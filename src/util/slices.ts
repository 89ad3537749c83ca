/**
 * Runs a generator of work to its end, letting the event loop through whenever a slice has taken
 * `sliceMs`: long CPU work (building a masker for a thousand secrets) then delays timers and I/O by
 * at most about one slice. The generator yields often (cheaply); only the clock decides.
 */
export async function runInSlices<T>(work: Generator<void, T>, sliceMs: number): Promise<T> {
  let since = performance.now();
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    if (performance.now() - since < sliceMs) continue;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = performance.now();
  }
}

/** Runs a generator of work to its end at once (see runInSlices). */
export function runAtOnce<T>(work: Generator<void, T>): T {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
  }
}
