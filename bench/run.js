#!/usr/bin/env node
// Entry point of `npm run bench -- <name>`: each benchmark prints Kiln's figure beside its
// anchor's from the same run. Benchmarks register here as they are written.
const BENCHMARKS = {};

const name = process.argv[2];
if (!name) {
  const names = Object.keys(BENCHMARKS);
  console.log(names.length === 0 ? 'no benchmarks yet' : `benchmarks: ${names.join(', ')}`);
  process.exit(0);
}
if (!(name in BENCHMARKS)) {
  console.error(`unknown benchmark "${name}"; known: ${Object.keys(BENCHMARKS).join(', ') || 'none'}`);
  process.exit(2);
}
await BENCHMARKS[name]();
