import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The machine's Postgres admin database, where each benchmark system gets a database of its own. */
export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A new, empty database named `kbench_<label>_<random>`; `drop` removes it whatever holds it open. */
export async function createDatabase(label: string): Promise<BenchDatabase> {
  const name = `kbench_${label}_${randomBytes(4).toString('hex')}`;
  await admin(`create database "${name}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), drop: () => admin(`drop database if exists "${name}" with (force)`) };
}

/** A pool with an error handler, so a connection ended by `drop ... with (force)` never crashes the run. */
export function benchPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: 'kiln-bench' });
  pool.on('error', () => {});
  pool.on('connect', (c) => c.on('error', () => {}));
  return pool;
}

/**
 * Counts the statements and transactions sent through the shared `pg` module (Kiln's pool,
 * graphile-worker and pg-boss all use it; MikroORM has its own copy, which the dispatch path does
 * not use). Per finished job they say how much database work one dispatch costs: with
 * synchronous_commit on, every transaction is a WAL flush, which CPU time alone hides.
 * A transaction is a `begin` ... `commit`/`rollback` block, or a statement sent outside one.
 */
export const statements = { count: 0, transactions: 0 };

/**
 * While `profile.on`, each statement's time from send to result (client side: includes waiting
 * for a connection's turn, locks and commit), summed per statement text (first 90 characters).
 */
export const profile = { on: false, byText: new Map<string, { n: number; ms: number }>() };

function timed(text: string, args: unknown[], run: (args: unknown[]) => unknown): unknown {
  const key = text.replace(/\s+/g, ' ').trim().slice(0, 90);
  const t0 = performance.now();
  const record = () => {
    const e = profile.byText.get(key) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += performance.now() - t0;
    profile.byText.set(key, e);
  };
  const last = args[args.length - 1];
  if (typeof last === 'function') {
    const cb = last as (...a: unknown[]) => void;
    return run([...args.slice(0, -1), (...a: unknown[]) => (record(), cb(...a))]);
  }
  const result = run(args);
  if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).then(record, record);
  return result;
}
const inTx = new WeakSet<object>();
const uncounted = new WeakSet<object>();

/** Leaves a client of the benchmark's own (a probe) out of the counts and the profile. */
export function dontCount(client: pg.Client): void {
  uncounted.add(client);
}
let patched = false;
export function countStatements(): void {
  if (patched) return;
  patched = true;
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: object, ...args: unknown[]) {
    if (uncounted.has(this)) return original.apply(this, args);
    statements.count++;
    const first = args[0];
    const text = typeof first === 'string' ? first : typeof (first as { text?: unknown })?.text === 'string' ? (first as { text: string }).text : '';
    if (/^\s*(begin|start transaction)\b/i.test(text)) {
      inTx.add(this);
      statements.transactions++;
    } else if (/^\s*(commit|rollback|end)\b/i.test(text)) {
      inTx.delete(this);
    } else if (!inTx.has(this)) {
      statements.transactions++;
    }
    if (profile.on && text) return timed(text, args, (a) => original.apply(this, a));
    return original.apply(this, args);
  };
}

/** The statements that took the most time while profiling, as report lines. */
export function profileLines(top: number, per: number, unit: string): string[] {
  const rows = [...profile.byText].sort((a, b) => b[1].ms - a[1].ms).slice(0, top);
  return rows.map(([text, e]) => `${(e.ms / per).toFixed(1).padStart(7)} ms/${unit} ${String(e.n).padStart(7)}x ${(e.ms / e.n).toFixed(1).padStart(6)} ms avg  ${text}`);
}

/** Starts counting; the returned function gives the counts since, less `excluded` single-statement polls. */
export function countFromHere(): (excluded: number) => { statements: number; transactions: number } {
  const s0 = statements.count;
  const t0 = statements.transactions;
  return (excluded) => ({ statements: statements.count - s0 - excluded, transactions: statements.transactions - t0 - excluded });
}
