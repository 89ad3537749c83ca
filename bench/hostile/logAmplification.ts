import { sleep } from '../lib/stats.js';
import { gql, Tally } from './api.js';
import { submitOneOff, waitWhile } from './executions.js';
import type { Attack } from './context.js';

/**
 * Attack 2 (issue 11, item 2): one request that reads a big log many times over. A runs a build
 * printing `mb` MB of 4 KiB lines (under the 16 KiB line limit, so one chunk each), then asks for
 * its execution with `aliases` aliases of `logs(limit: 10000)`, from `concurrency` clients, each
 * asking again as soon as it is answered, until the window ends.
 */

const LINE_BYTES = 4096;

/** A build whose step prints `mb` MB of numbered 4 KiB lines, in busybox awk. */
function bigLogJob(mb: number): string {
  const lines = Math.ceil((mb * 1_000_000) / LINE_BYTES);
  const awk = `awk 'BEGIN { s = sprintf("%${LINE_BYTES - 8}s", ""); gsub(/ /, "x", s); for (i = 0; i < ${lines}; i++) printf "%7d %s\\n", i, s }'`;
  return `jobs:\n  - name: BigLog\n    steps:\n      - name: print\n        run: ${JSON.stringify(awk)}\n`;
}

export function logAmplificationAttack(opts: { mb: number; aliases: number; concurrency: number }): Attack {
  let executionId = '';
  const fields = Array.from({ length: opts.aliases }, (_, i) => `a${i}: logs(limit: 10000) { seq text }`).join(' ');
  const query = `query($id: ID!) { execution(id: $id) { ${fields} } }`;
  return {
    label: 'log amplification',
    name: `log amplification: ${opts.aliases} aliases of logs(limit: 10000) on a ${opts.mb} MB log, ${opts.concurrency} clients repeating`,
    async prepare(ctx) {
      executionId = await submitOneOff(ctx.url, ctx.a, bigLogJob(opts.mb));
      const e = await waitWhile(ctx.url, ctx.a, executionId, ['QUEUED', 'RUNNING'], 180_000);
      if (e.status !== 'SUCCEEDED') throw new Error(`A's big-log build ended ${e.status}: ${e.error ?? ''}`);
      await sleep(1000); // its last chunks stored and the process settled before measuring
    },
    async run(ctx, signal) {
      const tally = new Tally();
      const client = async () => {
        while (!signal.aborted) {
          const a = await tally.time(gql(ctx.url, ctx.a.token, query, { id: executionId }, signal));
          // Refused or failed: try again a little later, as a persistent client would.
          if (!signal.aborted && (a === null || a.status !== 200)) await sleep(500);
        }
      };
      await Promise.all(Array.from({ length: opts.concurrency }, client));
      return { tally, notes: [`${(tally.bytes / 1e6).toFixed(0)} MB answered to A`] };
    },
  };
}
