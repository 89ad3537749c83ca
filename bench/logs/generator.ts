/**
 * The build step both sides of the latency benchmark run: busybox awk printing numbered lines
 * at a steady rate, each stamped with the container's clock (microseconds since the epoch) at
 * the moment it is written. The container shares the host's kernel clock, so a reader's receive
 * time minus the stamp is the line's latency. busybox `date` has no sub-second format; `adjtimex`
 * reports the time in microseconds, read once per burst of lines (the burst is written at once).
 */
const AWK = `function now(   line, a, s, u) {
  while (("adjtimex" | getline line) > 0) {
    if (line ~ /tv_sec/) { split(line, a, ":"); s = a[2] + 0 }
    if (line ~ /tv_usec/) { split(line, a, ":"); u = a[2] + 0 }
  }
  close("adjtimex")
  return s * 1000000 + u
}
BEGIN {
  t0 = now()
  for (b = 0; b * burst < total; b++) {
    due = t0 + b * burst * 1000000 / rate
    t = now()
    if (due > t + 500) { system("usleep " int(due - t)); t = now() }
    for (j = 1; j <= burst && b * burst + j <= total; j++) printf "%.0f %d\\n", t, b * burst + j
    fflush()
  }
}`;

/** What to print: `total` lines at `rate` lines per second, in bursts of `burst`. */
export interface GeneratorShape {
  rate: number;
  total: number;
  /** Lines written at once; 100 at 10,000 lines/s is one burst every 10 ms. */
  burst: number;
  /** Seconds to sleep before the first line (so that subscribers are in place). */
  delay?: number;
}

/** The shell command of the step. */
export function generatorCommand(shape: GeneratorShape): string {
  const awk = `awk -v rate=${shape.rate} -v total=${shape.total} -v burst=${shape.burst} '${AWK}'`;
  return shape.delay ? `sleep ${shape.delay}; ${awk}` : awk;
}

/** A one-off job file whose only step is the generator. */
export function generatorJob(name: string, image: string, shape: GeneratorShape): string {
  const command = generatorCommand(shape)
    .split('\n')
    .map((l) => `          ${l}`)
    .join('\n');
  return `jobs:\n  - name: ${name}\n    image: ${image}\n    steps:\n      - name: generate\n        run: |\n${command}\n`;
}

/** The latency (ms) of a generator line read at `receivedUs` (epoch microseconds); null for other lines. */
export function lineLatencyMs(text: string, receivedUs: number): number | null {
  const space = text.indexOf(' ');
  if (space <= 0) return null;
  const stamp = Number(text.slice(0, space));
  return Number.isFinite(stamp) && stamp > 1e15 ? (receivedUs - stamp) / 1000 : null;
}

/** Now, in epoch microseconds, with sub-millisecond resolution. */
export function nowUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}
