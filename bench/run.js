#!/usr/bin/env node
// Entry point of `npm run bench -- <name>`. Each benchmark is bench/<name>.ts, compiled to
// dist/bench/<name>.js, exporting `main(args)`; it prints Kiln's figure beside its anchor's
// (raw graphile-worker, pg-boss, BullMQ, raw `docker run`) from the same run, as a ratio.
const BENCHMARKS = {
  // name: 'what it measures',
  schedule: 'per-second fire lateness, dispatch throughput, the spread (10,000 once-a-minute schedules) and the herd (10,000 jobs due at once), with a history query on Kiln\'s API during each; Kiln vs graphile-worker, pg-boss, BullMQ',
  logs: 'container line -> subscriber latency at 10,000 lines/s vs raw docker attach; API CPU and memory with 1,000 subscribers on one build',
  docker: 'submit -> SUCCEEDED of a `true` job vs raw `docker run --rm`; 1,000,000-line log throughput, all archived, with the worker\'s peak memory',
  hostile: 'one user\'s attacks (issue 11: cron-heavy file, log amplification, ping flood, tokenless flood, git bomb, many secrets) against one `kiln start`: another user\'s query p50/p99, live log and build, and the server\'s peak RSS, each beside the same with no attack',
  services: 'the gap between a job\'s Postgres service accepting connections and its first step starting (issue 13: median < 500 ms over 20 runs), on `kiln start`',
  build: 'the seed\'s BuildAndTest (go mod download, go build, go test) on the fixture Go module in kiln-test/go: Kiln vs `docker run` + `docker exec` in the same image, cold and warm cache (`cache:` when the job file has it), per step',
  web: 'the web app in headless Chromium: time to a usable board of 1,000 jobs (p50/p95 of 10 cold loads), and a container line to the build page beside the same line to a raw graphql-ws subscriber (p50/p99)',
  history: 'a job\'s history page (20 executions with steps) over HTTP, first and deep pages of 1,000,000 executions, vs the keyset SQL alone',
};

const [name, ...args] = process.argv.slice(2);
if (!name) {
  const names = Object.entries(BENCHMARKS);
  console.log(names.length === 0 ? 'no benchmarks yet' : names.map(([n, d]) => `${n}\t${d}`).join('\n'));
  process.exit(0);
}
if (!(name in BENCHMARKS)) {
  console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHMARKS).join(', ') || 'none'}`);
  process.exit(2);
}
const mod = await import(new URL(`../dist/bench/${name}.js`, import.meta.url).href);
await mod.main(args);
