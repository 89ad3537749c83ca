import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pgm from 'pg';
import type pg from 'pg';
import { startKiln, type Kiln } from '../../src/app.js';
import { mintLocalToken } from '../../src/auth/token.js';
import { loadConfig } from '../../src/config.js';
import { ExecutionTrigger } from '../../src/entities/enums.js';
import { insertExecutions } from '../../src/executions/create.js';
import { inTransaction } from '../../src/util/sql.js';
import { submitJobs } from '../../src/services/submitJobs.js';
import type { JobSpec } from '../../src/jobfile/types.js';
import { ADMIN_URL, benchPool, countFromHere, createDatabase, profile, profileLines } from '../lib/pg.js';
import { Probe, waitsLine } from '../lib/probe.js';
import { load1, ms, nextSecond, sleep, summarize, type Summary } from '../lib/stats.js';
import { Bystander } from './bystander.js';
import { planWindow, secondOfMinute, type LatenessOptions, type LatenessRun, type ThroughputOptions, type ThroughputRun, type Window } from './common.js';

/**
 * Kiln as a user runs `kiln start`: the composition root `startKiln` (API and worker roles in one
 * process, noop executor) on a database of its own; figures read from the `ticks` and
 * `executions` tables Kiln writes anyway, and from a bystander querying its API meanwhile.
 */

/** The user who owns every job of the benchmark, and as whom the bystander reads the history. */
export const BENCH_USER = 'bench';

const SECRET = 'kiln-bench-secret-that-is-at-least-32-bytes-long';
const STOP_TIMEOUT_MS = 60_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not return within ${ms / 1000} s`)), ms))),
  ]);
}

export interface Running {
  kiln: Kiln;
  db: string;
  /** The benchmark's own connections to Kiln's database: its reads never wait for Kiln's pool. */
  pool: pg.Pool;
  /** Kiln's log lines that report trouble (queue errors, lost leases, scheduler errors). */
  trouble: string[];
  /** Starts a bystander against this Kiln's API, as BENCH_USER. */
  bystander(): Bystander;
}

/** Runs `fn` while MikroORM's migration progress lines are kept off stdout (the report goes there). */
async function quietStdout<T>(fn: () => Promise<T>): Promise<T> {
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) =>
    String(chunk).includes('[migrator]') ? true : (write as (...a: unknown[]) => boolean).call(process.stdout, chunk, ...rest)) as typeof write;
  try {
    return await fn();
  } finally {
    process.stdout.write = write;
  }
}

export async function withKiln<T>(label: string, o: { concurrency: number; pollMs: number }, fn: (k: Running) => Promise<T>): Promise<T> {
  const db = await createDatabase(label);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-bench-'));
  const trouble: string[] = [];
  let kiln: Kiln | null = null;
  const pool = benchPool(db.url, 3);
  try {
    kiln = await quietStdout(() =>
      startKiln({
        config: loadConfig({
          DATABASE_URL: db.url,
          KILN_DATA_DIR: dataDir,
          KILN_JWT_SECRET: SECRET,
          PORT: '0',
          HOST: '127.0.0.1',
          KILN_EXECUTOR: 'noop',
          KILN_WORKER_CONCURRENCY: String(o.concurrency),
          KILN_POLL_INTERVAL_MS: String(o.pollMs),
        }),
        api: true,
        worker: true,
        log: (m) => {
          if (process.env.BENCH_LOG) console.error(`[kiln] ${m}`);
          if (/^shutdown:/.test(m)) console.error(`[kiln] ${m}`);
          if (/error|fail|lost|scheduler:|shutdown:/i.test(m) && !/this worker is the leader|leadership released/.test(m)) trouble.push(m);
        },
      }),
    );
    if (kiln.auth?.mode !== 'local' || !kiln.http) throw new Error('Kiln started without its API in local auth mode');
    const token = await mintLocalToken(kiln.auth, BENCH_USER);
    const url = kiln.http.url;
    await Bystander.warmUp(url, token);
    return await fn({ kiln, db: db.name, pool, trouble, bystander: () => Bystander.start(url, token) });
  } finally {
    // Under overload Kiln's stop() has been seen not to return; the run goes on without it.
    if (kiln) await withTimeout(kiln.stop(), STOP_TIMEOUT_MS, 'kiln.stop()').catch((err: Error) => console.error(`[bench] ${label}: ${err.message}`));
    await pool.end();
    await reportLeftovers(db.name);
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * The schedules of the jobs `createJobs` makes: all on one `schedule` with the cursor `nextRunAt`
 * (null: keep the one submitJobs computed), or `spread`: job i on `${i % 60} * * * * *`, each with
 * its cursor on its first fire time at or after `from` (a whole second).
 */
export type JobsShape = { schedule: string; nextRunAt: Date | null } | { spread: true; from: Date };

const SPREAD_TEMPLATE = '0 * * * * *';

/**
 * Creates `n` jobs `<prefix>0..n-1` with one noop step, owned by BENCH_USER: the first through the
 * `submitJobs` service, the others as SQL copies of the row it stored (every column, whatever
 * migrations added, with name, id, counters and, when spread, schedule renewed), so that setting
 * up 10,000 schedules takes a second instead of minutes of ORM round trips competing with the
 * firing it sets up. Then the cursors are set and the scheduler is told.
 */
export async function createJobs(kiln: Kiln, pool: pg.Pool, n: number, prefix: string, shape: JobsShape): Promise<void> {
  const spread = 'spread' in shape;
  const schedule = spread ? SPREAD_TEMPLATE : shape.schedule;
  const [template] = await submitJobs(kiln.deps, BENCH_USER, `jobs:\n  - name: ${prefix}0\n    schedule: "${schedule}"\n    steps: [{run: "true"}]\n`);
  const { rows } = await pool.query<{ c: string }>(
    `select column_name as c from information_schema.columns where table_schema = current_schema() and table_name = 'jobs' order by ordinal_position`,
  );
  // Text of row i: its name for the template's, and (spread) its schedule for the template's.
  const sched = `((i % 60)::text || ' * * * * *')`;
  const renew = (text: string) => {
    const named = `replace(${text}, $2::text || '0', $2::text || i)`;
    return spread ? `replace(${named}, '"${SPREAD_TEMPLATE}"', '"' || ${sched} || '"')` : named;
  };
  const renewed: Record<string, string> = {
    id: 'gen_random_uuid()',
    name: `$2::text || i`,
    definition:
      `jsonb_set(jsonb_set(jsonb_set(definition, '{name}', to_jsonb($2::text || i)), '{source}', to_jsonb(${renew(`definition->>'source'`)})),` +
      ` '{schedule}', ${spread ? `to_jsonb(${sched})` : `definition->'schedule'`})`,
    spec: renew('spec'),
    ...(spread ? { schedule: sched } : {}),
    execution_count: '0',
    created_at: 'now()',
    updated_at: 'now()',
  };
  const cols = rows.map((r) => r.c);
  await inTransaction(pool, async (sql) => {
    if (n > 1) {
      await sql(
        `insert into jobs (${cols.map((c) => `"${c}"`).join(', ')})
         select ${cols.map((c) => renewed[c] ?? `"${c}"`).join(', ')} from jobs, generate_series(1, $3::int - 1) as i where id = $1`,
        [template!.id, prefix, n],
      );
    }
    if (spread) {
      await sql(
        `update jobs set next_run_at = $1::timestamptz + make_interval(secs => (split_part(schedule, ' ', 1)::int - $2::int + 60) % 60)`,
        [shape.from, secondOfMinute(shape.from.getTime())],
      );
    } else if (shape.nextRunAt) {
      await sql(`update jobs set next_run_at = $1`, [shape.nextRunAt]);
    }
    await sql(`select pg_notify('kiln_schedules', '')`);
  });
}

/** Says on stderr which sessions Kiln left open on its database after `stop()` (the drop ends them). */
async function reportLeftovers(dbName: string): Promise<void> {
  const admin = new pgm.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ app: string; state: string; query: string }>(
      `select application_name as app, state, left(query, 80) as query from pg_stat_activity where datname = $1`,
      [dbName],
    );
    if (rows.length > 0) console.error(`note: after kiln.stop() ${rows.length} session(s) were still open: ${rows.map((r) => `[${r.app}] ${r.state}: ${r.query}`).join(' | ')}`);
  } finally {
    await admin.end();
  }
}

/** Kiln's trouble, one line per kind (ids and numbers blanked), most frequent first, at most `kinds`. */
export function troubleLine(trouble: string[], kinds = 3): string[] {
  if (trouble.length === 0) return [];
  const byKind = new Map<string, { n: number; first: string }>();
  for (const t of trouble) {
    const line = t.split('\n')[0]!;
    const kind = line.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<id>').replace(/\d+/g, 'N').slice(0, 80);
    const e = byKind.get(kind) ?? { n: 0, first: line };
    e.n++;
    byKind.set(kind, e);
  }
  const top = [...byKind.values()].sort((a, b) => b.n - a.n).slice(0, kinds);
  return [
    `Kiln logged ${trouble.length} warning/error line(s) of ${byKind.size} kind(s); most frequent:`,
    ...top.map((e) => `    ${String(e.n).padStart(5)}x ${e.first.slice(0, 160)}`),
  ];
}

export const share = (cpuMs: number, wallMs: number) => `${((100 * cpuMs) / wallMs).toFixed(0)}% of one core`;

/**
 * Fire lateness of `schedules` jobs on `*\/1 * * * * *` (every second): for every tick in the
 * window, started_at - scheduled_for of its execution (see measureTicks).
 */
export async function kilnLateness(o: LatenessOptions): Promise<LatenessRun> {
  return withKiln('kiln_late', o, async (k) => {
    const first = nextSecond(Date.now() + 1000);
    await createJobs(k.kiln, k.pool, o.schedules, 's', { schedule: '*/1 * * * * *', nextRunAt: new Date(first) });
    const w = planWindow(first, o);
    return measureTicks(k, o, w, o.schedules * (o.windowMs / 1000));
  });
}

/**
 * Waits for the window, watching it (CPU, backend waits, statement profile, the bystander), then
 * for the drain, and reads from the ledger every fire time of the window: how late each fire's
 * execution started (started_at - scheduled_for). Ticks that ran no execution (SKIPPED_OVERLAP:
 * the job's previous run had not finished, the default `concurrency: skip`; MISSED: reached later
 * than the misfire grace) and fire times the scheduler had not recorded by the deadline count as
 * fires that did not run.
 */
export async function measureTicks(k: Running, o: LatenessOptions, w: Window, expected: number): Promise<LatenessRun> {
  const { db, pool, trouble } = k;
  await sleep(w.start - Date.now());
  const probe = await Probe.start(db);
  const bystander = k.bystander();
  profile.byText.clear();
  profile.on = true;
  await sleep(w.end - Date.now());
  profile.on = false;
  const [usage, seen] = await Promise.all([probe.stop(), bystander.stop()]);
  const range = [new Date(w.start), new Date(w.end)];
  const deadline = w.end + o.drainMs;
  // Drain: every fire time of the window in the ledger, and none of its executions still QUEUED.
  for (;;) {
    const { rows } = await pool.query<{ ticks: number; waiting: number }>(
      `select count(*)::int as ticks, count(*) filter (where e.status = 'QUEUED')::int as waiting
         from ticks t left join executions e on e.id = t.execution_id where t.fire_time >= $1 and t.fire_time < $2`,
      range,
    );
    if ((rows[0]!.ticks >= expected && rows[0]!.waiting === 0) || Date.now() > deadline) break;
    await sleep(200);
  }
  const { rows } = await pool.query<{ outcome: string; late: number | null; sched: number | null; wait: number | null; run: number | null }>(
    `select t.outcome,
            extract(epoch from e.started_at - e.scheduled_for) * 1000 as late,
            extract(epoch from e.queued_at - e.scheduled_for) * 1000 as sched,
            extract(epoch from e.started_at - e.queued_at) * 1000 as wait,
            extract(epoch from e.finished_at - e.started_at) * 1000 as run
       from ticks t left join executions e on e.id = t.execution_id
      where t.fire_time >= $1 and t.fire_time < $2`,
    range,
  );
  const load = load1();
  const started = rows.filter((r) => r.late !== null);
  const outcomes = new Map<string, number>();
  for (const r of rows) outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
  const unrecorded = expected - rows.length;
  const sched = summarize(started.map((r) => Number(r.sched)));
  const wait = summarize(started.map((r) => Number(r.wait)));
  const run = summarize(started.filter((r) => r.run !== null).map((r) => Number(r.run)));
  return {
    system: 'Kiln',
    schedules: o.schedules,
    expected,
    samples: started.map((r) => Number(r.late)),
    load,
    bystander: seen,
    detail: [
      `ticks in window: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}${unrecorded > 0 ? `, not recorded by the deadline ${unrecorded}` : ''}; ` +
        `FIRED but not started by the deadline: ${rows.filter((r) => r.outcome === 'FIRED' && r.late === null).length}`,
      `lateness split (p50/p99/max ms): fire -> queued (scheduler) ${triple(sched)}; queued -> RUNNING (queue + claim) ${triple(wait)}; RUNNING -> done (noop run) ${triple(run)}`,
      `during the window: Node ${share(usage.nodeCpuMs, o.windowMs)}, Postgres backends ${share(usage.serverCpuMs, o.windowMs)}; backends: ${waitsLine(usage.waits)}`,
      'statements by time spent waiting for them during the window (client side, summed over all connections):',
      ...profileLines(6, o.windowMs / 1000, 's').map((l) => `    ${l}`),
      ...troubleLine(trouble),
    ],
  };
}

/** "p50/p99/max" in ms. */
export const triple = (s: Summary) => `${ms(s.p50)}/${ms(s.p99)}/${ms(s.max)}`;

export const WHAT_IF = 'Kiln, NOTIFY triggers off (what-if)';

/**
 * The what-if run: Kiln's row triggers that NOTIFY execution, step and log changes (live events
 * for subscriptions) are disabled on the benchmark's database, to show what they cost dispatch.
 * Every transaction that sends a NOTIFY takes one cluster-wide lock at commit, held through its
 * WAL flush, so those transactions commit one at a time. Returns the triggers it disabled.
 */
async function disableEventTriggers(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ tbl: string; name: string }>(
    `select c.relname as tbl, t.tgname as name from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_proc p on p.oid = t.tgfoid
      where not t.tgisinternal and c.relnamespace = current_schema()::regnamespace and p.prosrc ilike '%pg_notify%'`,
  );
  for (const r of rows) await pool.query(`alter table "${r.tbl}" disable trigger "${r.name}"`);
  return rows.map((r) => `${r.tbl}.${r.name}`);
}

/**
 * Dispatch throughput: `jobs` jobs (on a schedule that does not fire during the run) get one
 * MANUAL execution each, queued in one transaction through `insertExecutions` (the scheduler's
 * bulk path: execution rows, PENDING steps, graphile-worker entries); then the time until all are
 * SUCCEEDED, with everything Kiln records on the way (steps, log lines, lease, archive job).
 */
export async function kilnThroughput(o: ThroughputOptions, withoutEventTriggers = false): Promise<ThroughputRun> {
  return withKiln('kiln_tp', o, async ({ kiln, db, pool, trouble, bystander: watch }) => {
    await createJobs(kiln, pool, o.jobs, 'j', { schedule: '0 0 1 1 *', nextRunAt: null });
    const disabled = withoutEventTriggers ? await disableEventTriggers(pool) : [];
    const { rows: jobs } = await pool.query<{ id: string; owner: string; priority: number; definition: JobSpec }>(
      `select id, owner, priority, definition from jobs`,
    );
    await sleep(1000); // let the scheduler settle after the notification
    let polls = 0;
    const probe = await Probe.start(db);
    const bystander = watch();
    const counted = countFromHere();
    profile.byText.clear();
    profile.on = true;
    const t0 = Date.now();
    await inTransaction(pool, (sql) =>
      insertExecutions(sql, kiln.deps.config.defaultImage, jobs.map((job) => ({ job, trigger: ExecutionTrigger.MANUAL }))),
    );
    const enqueueMs = Date.now() - t0;
    let done = 0;
    let failed = 0;
    while (Date.now() - t0 < o.timeoutMs) {
      polls++;
      const { rows } = await pool.query<{ ok: number; bad: number }>(
        `select count(*) filter (where status = 'SUCCEEDED')::int as ok, count(*) filter (where status not in ('SUCCEEDED', 'QUEUED', 'RUNNING'))::int as bad from executions`,
      );
      [done, failed] = [rows[0]!.ok, rows[0]!.bad];
      if (done + failed >= o.jobs) break;
      await sleep(100);
    }
    const stmts = counted(polls);
    profile.on = false;
    const [usage, seen] = await Promise.all([probe.stop(), bystander.stop()]);
    const { rows } = await pool.query<{ last: Date | null }>(`select max(finished_at) as last from executions where status = 'SUCCEEDED'`);
    const load = load1();
    const seconds = ((rows[0]!.last?.getTime() ?? Date.now()) - t0) / 1000;
    // Each finish queues the log's archive, which runs beside the executions: when did it catch up?
    const archiveDeadline = Date.now() + 30_000;
    let archived = 0;
    while (Date.now() < archiveDeadline) {
      archived = (await pool.query<{ n: number }>(`select count(*)::int as n from executions where log_key is not null`)).rows[0]!.n;
      if (archived >= done) break;
      await sleep(200);
    }
    const perJob = Math.max(1, done);
    return {
      system: withoutEventTriggers ? WHAT_IF : 'Kiln',
      jobs: done,
      seconds,
      perSecond: done / seconds,
      statementsPerJob: stmts.statements / perJob,
      transactionsPerJob: stmts.transactions / perJob,
      nodeCpuMsPerJob: usage.nodeCpuMs / perJob,
      serverCpuMsPerJob: usage.serverCpuMs / perJob,
      history: 'execution, steps, log lines (+ archive), lease',
      load,
      bystander: seen,
      error: done < o.jobs ? `${o.jobs - done} of ${o.jobs} not SUCCEEDED within ${o.timeoutMs / 1000} s (${failed} ended otherwise)` : undefined,
      detail: [
        `queueing ${o.jobs} executions (one transaction) took ${(enqueueMs / 1000).toFixed(2)} s of the ${seconds.toFixed(1)} s; ` +
          `logs archived for ${archived}/${done} by ${((Date.now() - t0) / 1000).toFixed(1)} s`,
        `Node CPU per execution: ${(usage.nodeCpuMs / perJob).toFixed(2)} ms, of which ${(usage.nodeSystemMs / perJob).toFixed(2)} ms in the kernel (system calls); Postgres backends: ${waitsLine(usage.waits)}`,
        'statements by time spent waiting for them (client side: includes lock waits and commit flushes; the benchmark\'s polls are among them):',
        ...profileLines(withoutEventTriggers ? 6 : 10, perJob, 'job').map((l) => `    ${l}`),
        ...(withoutEventTriggers ? [`diagnostic only, not Kiln as shipped: disabled ${disabled.join(', ') || 'no trigger'} on this run's database`] : []),
        ...troubleLine(trouble),
      ],
    };
  });
}
