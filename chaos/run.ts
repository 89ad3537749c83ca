import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Row } from './lib/checker.js';
import { formatTable } from './lib/checker.js';
import { ScenarioRun, startWorld } from './lib/world.js';
import { killWorker } from './scenarios/killWorker.js';
import { pgRestart } from './scenarios/pgRestart.js';
import { partition } from './scenarios/partition.js';
import { blackhole } from './scenarios/blackhole.js';
import { dockerRestart } from './scenarios/dockerRestart.js';
import { engineOutage } from './scenarios/engineOutage.js';
import { storeOutage } from './scenarios/storeOutage.js';
import { burst } from './scenarios/burst.js';

/**
 * `npm run chaos [-- <scenario>...]`: fault injection against real `kiln serve` and `kiln worker`
 * processes, a Postgres cluster of the suite's own, the machine's Docker engine and s3rver. Each
 * scenario ends with the shared checker (lib/checker.ts); the run prints one table row per
 * scenario and exits 1 when any missed an expectation.
 */
const SCENARIOS: Record<string, { what: string; env?: Record<string, string>; run: (r: ScenarioRun) => Promise<Row> }> = {
  'kill-worker': { what: 'SIGKILL a worker mid-step, 3 times', run: killWorker },
  'pg-restart': { what: 'pg_ctl restart -m immediate while 200 jobs are submitted and run', run: pgRestart },
  partition: { what: 'the link between a worker and Postgres cut for longer than the lease', run: partition },
  blackhole: { what: 'the scheduler leader\'s link to Postgres blackholed (packets dropped, sockets left open) for 40 s', run: blackhole },
  'docker-restart': { what: 'the Docker daemon restarted during a run', run: dockerRestart },
  'engine-outage': { what: 'the Docker engine stopped for 60 s while 20 one-off jobs are submitted', run: engineOutage },
  'store-outage': { what: 'the S3-compatible store down for 60 s while executions finish', run: storeOutage },
  burst: { what: '1,000 executions over 50 jobs, retries and timeouts, 3 workers', run: burst },
};

function failedRow(name: string, startedAt: number, err: Error): Row {
  return {
    scenario: name, firesExpected: 0, executionsRun: 0, lost: 0, duplicated: 0, maxConcurrentPerJob: 0, containersLeft: 0,
    logLinesLost: 0, recoveryMs: null, seconds: Math.round((Date.now() - startedAt) / 1000),
    failures: [`scenario error: ${err.message.split('\n').slice(0, 6).join(' / ')}`], notes: [],
  };
}

async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => !(a in SCENARIOS));
  if (unknown.length > 0) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}\nknown:\n${Object.entries(SCENARIOS).map(([n, s]) => `  ${n}\t${s.what}`).join('\n')}`);
    return 2;
  }
  const names = args.length > 0 ? args : Object.keys(SCENARIOS);
  const runDir = process.env.KILN_CHAOS_DIR ?? mkdtempSync(path.join(tmpdir(), 'kiln-chaos-'));
  const started = Date.now();
  console.log(`chaos: ${names.join(', ')} (process logs in ${runDir})`);
  const world = await startWorld(runDir);
  const rows: Row[] = [];
  try {
    for (const name of names) {
      const s = SCENARIOS[name]!;
      console.log(`\n== ${name}: ${s.what}`);
      const run = new ScenarioRun(world, name, s.env);
      let row: Row;
      try {
        await run.start();
        row = await s.run(run);
      } catch (err) {
        row = failedRow(name, run.startedAt, err as Error);
      } finally {
        await run.close().catch((err: Error) => console.error(`${name}: cleanup: ${err.message}`));
      }
      rows.push(row);
      console.log(formatTable([row]));
    }
  } finally {
    await world.close().catch((err: Error) => console.error(`chaos: teardown: ${err.message}`));
  }
  console.log(`\nchaos summary (${Math.round((Date.now() - started) / 1000)} s)\n${formatTable(rows)}`);
  return rows.every((r) => r.failures.length === 0) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`chaos: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
