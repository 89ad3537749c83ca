import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import type pg from 'pg';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import type { JobSpec } from '../src/jobfile/types.js';
import { seedHistory } from './history/seed.js';
import { dataOf, gql, Tally, type User } from './hostile/api.js';
import type { Attack, HostileContext } from './hostile/context.js';
import { cronAttack } from './hostile/cron.js';
import { type BombServer, GIT_IMAGE, gitBombAttack, startBombServer } from './hostile/gitBomb.js';
import { logAmplificationAttack } from './hostile/logAmplification.js';
import { manySecretsAttack } from './hostile/manySecrets.js';
import { runPhase, type PhaseResult } from './hostile/phase.js';
import { pingFloodAttack } from './hostile/pingFlood.js';
import { printReport } from './hostile/report.js';
import { tokenlessAttack } from './hostile/tokenless.js';
import { parseArgs, positive } from './lib/args.js';
import { startKilnProcess, type KilnProcess } from './lib/kilnProcess.js';
import { benchPool, createDatabase } from './lib/pg.js';
import { sleep, uptimeLine } from './lib/stats.js';
import { Bystander } from './schedule/bystander.js';

/**
 * `npm run bench -- hostile`: what one user's attacks (issue 11, security review a2ac22f) do to
 * another user of the same installation. One `kiln start` (API, scheduler and worker in one
 * process, as shipped: default limits) on a throw-away database and a local store; user A
 * attacks, user B is the bystander (see hostile/phase.ts for what is measured). A baseline phase
 * with no attack comes first, then each attack for at most one window, with a pause between.
 * A server still unresponsive after an attack (its loop busy with work already accepted) is
 * restarted, so that each phase starts from a server that answers. With the git bomb among the
 * attacks, its git server (hostile/gitBomb.ts) starts first and the server checks out through it.
 */

const JWT_SECRET = 'kiln-bench-secret-that-is-at-least-32-bytes-long';
const IMAGE = 'kiln-test/busybox:latest';
const ATTACKS = ['cron', 'logs', 'pings', 'tokenless', 'gitbomb', 'secrets'] as const;
/** Executions in B's history, so that B's query reads a full page. */
const B_HISTORY = 200;

const SPEC = {
  attacks: { default: ATTACKS.join(','), help: `which attacks, in order (after the baseline): ${ATTACKS.join(',')}` },
  window: { default: '10', help: 'seconds each attack lasts at most' },
  pause: { default: '2', help: 'seconds between phases' },
  recover: { default: '6', help: 'seconds the server may take to answer /healthz again after an attack before it is restarted' },
  'rss-cap-mb': { default: '4096', help: 'an attack stops early when the server\'s RSS passes this (the machine is shared)' },
  'cron-jobs': { default: '1000', help: 'jobs in the cron-heavy file' },
  'cron-aliases': { default: '4', help: 'validateJobSpec aliases per request' },
  'cron-requests': { default: '10', help: 'cron-heavy requests sent at once' },
  'log-mb': { default: '20', help: 'size of A\'s big log, MB' },
  'log-aliases': { default: '8', help: 'logs(limit: 10000) aliases per request' },
  'log-clients': { default: '4', help: 'clients repeating the log request' },
  tokenless: { default: '10000', help: 'tokenless requests' },
  'tokenless-concurrency': { default: '50', help: 'tokenless requests in flight' },
  secrets: { default: '1000', help: 'secrets A tries to store and name in one job' },
  'secrets-mb': { default: '100', help: 'output of the many-secrets build, MB' },
};

const baseline: Attack = {
  label: 'baseline',
  name: 'baseline: no attack',
  async run(_ctx, signal) {
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    return { tally: new Tally(), requests: 'none', notes: [] };
  },
};

type AttackName = (typeof ATTACKS)[number];

/** The attacks --attacks names, in its order; throws on an unknown one (before anything starts). */
function attackNames(a: ReturnType<typeof parseArgs<typeof SPEC>>): AttackName[] {
  return a.attacks.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    if (!(ATTACKS as readonly string[]).includes(s)) throw new Error(`--attacks: unknown "${s}"; known: ${ATTACKS.join(',')}`);
    return s as AttackName;
  });
}

function makeAttacks(names: AttackName[], a: ReturnType<typeof parseArgs<typeof SPEC>>, bomb: BombServer | null): Attack[] {
  const n = (name: keyof typeof SPEC) => Math.round(positive(a[name], name));
  const make: Record<AttackName, () => Attack> = {
    cron: () => cronAttack({ jobs: n('cron-jobs'), aliases: n('cron-aliases'), requests: n('cron-requests') }),
    logs: () => logAmplificationAttack({ mb: n('log-mb'), aliases: n('log-aliases'), concurrency: n('log-clients') }),
    pings: () => pingFloodAttack(),
    tokenless: () => tokenlessAttack({ requests: n('tokenless'), concurrency: n('tokenless-concurrency') }),
    gitbomb: () => gitBombAttack(bomb!),
    secrets: () => manySecretsAttack({ secrets: n('secrets'), mb: n('secrets-mb') }),
  };
  return names.map((name) => make[name]());
}

/** B's history: a scheduled job with B_HISTORY finished executions, written by SQL. */
async function seedBystander(ctx: HostileContext, pool: pg.Pool): Promise<void> {
  const spec = 'jobs:\n  - name: Nightly\n    schedule: "0 3 * * *"\n    steps:\n      - name: build\n        run: make all\n';
  const d = await dataOf<{ submitJob: { jobs: Array<{ id: string }> } }>(await gql(ctx.url, ctx.b.token, 'mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }', { s: spec }), 'submitJob');
  const { rows } = await pool.query<{ id: string; owner: string; priority: number; definition: JobSpec }>('select id, owner, priority, definition from jobs where id = $1', [d.submitJob.jobs[0]!.id]);
  await seedHistory(pool, rows[0]!, B_HISTORY, IMAGE, () => {});
}

/** Removes the containers of this run's workers (a restarted server leaves its predecessor's). */
async function removeContainers(workerPrefix: string): Promise<void> {
  const docker = new Dockerode();
  const list = await docker.listContainers({ all: true, filters: { label: ['kiln.worker'] } });
  await Promise.all(
    list.filter((c) => c.Labels['kiln.worker']?.startsWith(workerPrefix)).map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)),
  );
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv, SPEC);
  const names = attackNames(a);
  console.log(`# Kiln hostile benchmark — ${new Date().toISOString()}`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s), ${uptimeLine()} at start (other engineers' tests may share the machine)`);
  console.log(`one \`kiln start\` (own process, default limits), Postgres 127.0.0.1:5432, local store, Docker (${IMAGE}, network none); A attacks, B looks on`);
  if (names.includes('gitbomb')) console.log(`git bomb: git daemon in ${GIT_IMAGE} on an internal docker network of its own, the server's KILN_CHECKOUT_NETWORK`);

  const db = await createDatabase('hostile');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-hostile-'));
  const pool = benchPool(db.url, 2);
  const workerPrefix = `bench-hostile-${randomBytes(3).toString('hex')}`;
  let starts = 0;
  const env = {
    DATABASE_URL: db.url,
    KILN_DATA_DIR: dataDir,
    KILN_JWT_SECRET: JWT_SECRET,
    KILN_SECRETS_KEY: randomBytes(32).toString('base64'),
    KILN_DEFAULT_IMAGE: IMAGE,
    HOST: '127.0.0.1',
    PORT: '0',
  };
  let bomb: BombServer | null = null;
  const start = () => startKilnProcess('start', { ...env, ...bomb?.env, KILN_WORKER_ID: `${workerPrefix}-${++starts}` });
  let ctx: HostileContext | null = null;
  let first: KilnProcess | null = null;
  try {
    bomb = names.includes('gitbomb') ? await startBombServer() : null;
    first = await start();
    const attacks = [baseline, ...makeAttacks(names, a, bomb)];
    const auth = localAuth(new TextEncoder().encode(JWT_SECRET)) as Extract<ReturnType<typeof localAuth>, { mode: 'local' }>;
    const user = async (name: string): Promise<User> => ({ name, token: await mintLocalToken(auth, name, 3600) });
    const restart = async () => {
      await ctx!.server.stop(2000);
      ctx!.server = await start();
      ctx!.url = ctx!.server.url!;
    };
    ctx = { server: first, restart, url: first.url!, a: await user('mallory'), b: await user('bob'), image: IMAGE, windowMs: positive(a.window, 'window') * 1000, rssCapMb: positive(a['rss-cap-mb'], 'rss-cap-mb') };
    await seedBystander(ctx, pool);
    await Bystander.warmUp(ctx.url, ctx.b.token);
    const results: PhaseResult[] = [];
    for (const [i, attack] of attacks.entries()) {
      process.stderr.write(`phase ${i}: ${attack.name}\n`);
      results.push(await runPhase(ctx, attack, i, { recoverMs: positive(a.recover, 'recover') * 1000, last: i === attacks.length - 1 }));
      await sleep(positive(a.pause, 'pause') * 1000);
    }
    printReport(results);
    console.log(`\n${uptimeLine()} at end`);
  } finally {
    await (ctx?.server ?? first)?.stop(5000).catch(() => undefined);
    await removeContainers(workerPrefix).catch(() => undefined);
    // After the checkout containers: a network with containers on it cannot be removed.
    await bomb?.stop().catch(() => undefined);
    await pool.end().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
