import { gql, Tally } from './api.js';
import type { Attack } from './context.js';

/**
 * Attack 1 (issue 11, item 1): a job file of 1,000 jobs whose schedules are rare cron
 * combinations (the fifth Thursday of February), validated under several aliases in one request,
 * several requests at once. Each schedule is checked by searching for its next fire times, so
 * the file costs seconds of CPU per alias wherever it is compiled.
 */

/** The job file: job i fires at second i % 60, minute i / 60, at midnight on a fifth Thursday of February. */
export function cronHeavyFile(jobs: number): string {
  const lines = ['jobs:'];
  for (let i = 0; i < jobs; i++) {
    lines.push(`  - name: rare${i}`, `    schedule: "${i % 60} ${(i / 60) | 0} 0 * 2 4#5"`, '    steps:', '      - run: "true"');
  }
  return `${lines.join('\n')}\n`;
}

export function cronAttack(opts: { jobs: number; aliases: number; requests: number }): Attack {
  const spec = cronHeavyFile(opts.jobs);
  const fields = Array.from({ length: opts.aliases }, (_, i) => `v${i}: validateJobSpec(spec: $s) { valid }`).join(' ');
  const query = `query($s: String!) { ${fields} }`;
  return {
    label: 'cron-heavy validate',
    name: `cron-heavy file (${opts.jobs} jobs, ${(spec.length / 1024).toFixed(0)} KiB) in ${opts.aliases} aliases of validateJobSpec, ${opts.requests} requests at once`,
    async run(ctx, signal) {
      const tally = new Tally();
      await Promise.all(Array.from({ length: opts.requests }, () => tally.time(gql(ctx.url, ctx.a.token, query, { s: spec }, signal))));
      return { tally, notes: [] };
    },
  };
}
