import type pg from 'pg';
import { setTimeout as delay } from 'node:timers/promises';
import { buffer } from 'node:stream/consumers';
import { hasTextObject, logKeys } from '../../src/logs/archive.js';
import { archivedNdjsonOf } from '../../src/logs/logPacks.js';
import type { ArtifactStore } from '../../src/storage/ArtifactStore.js';
import type { DockerEventRecorder } from './dockerEvents.js';
import Dockerode from 'dockerode';

/** What a scenario tells the checker beyond what the database and the store hold. */
export interface Expectations {
  /**
   * Requests the API acknowledged, per job id and trigger (SUBMIT for a one-off job's submit,
   * MANUAL for triggerJob): each must have its execution run to an end. `unknown` counts requests
   * whose outcome the client could not know (errors, timeouts): each may have committed.
   */
  acked?: Array<{ jobId: string; trigger: 'SUBMIT' | 'MANUAL'; count: number; unknown?: number }>;
  /** Recovery times measured by the scenario, ms. */
  recoveryMs?: number[];
  /** Largest recovery time allowed, ms. */
  maxRecoveryMs?: number;
  /** Extra findings of the scenario (e.g. fencing order); each is a failure. */
  failures?: string[];
  notes?: string[];
}

/** One line of the summary table. */
export interface Row {
  scenario: string;
  firesExpected: number;
  executionsRun: number;
  lost: number;
  duplicated: number;
  maxConcurrentPerJob: number;
  containersLeft: number;
  logLinesLost: number;
  recoveryMs: number | null;
  seconds: number;
  failures: string[];
  notes: string[];
}

interface ExecRow {
  id: string;
  job_id: string;
  status: string;
  trigger: string;
  attempt: number;
  scheduled_for: Date | null;
  retry_of: string | null;
  retry_number: number;
  last_seq: number;
  log_key: string | null;
  retries: number;
}

const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

/** Waits until no execution is QUEUED or RUNNING and every finished one is archived, or `timeoutMs` passes. */
export async function settle(pool: pg.Pool, timeoutMs: number, opts: { archived?: boolean } = {}): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { rows } = await pool.query<{ active: number; unarchived: number }>(
        `select count(*) filter (where status in ('QUEUED', 'RUNNING'))::int as active,
                count(*) filter (where status not in ('QUEUED', 'RUNNING') and log_key is null)::int as unarchived
           from executions`,
      );
      if (rows[0]!.active === 0 && (opts.archived === false || rows[0]!.unarchived === 0)) return true;
    } catch {
      /* Postgres restarting */
    }
    if (Date.now() > deadline) return false;
    await delay(500);
  }
}

/** Most intervals open at one instant (touching ends do not overlap). */
export function maxConcurrent(intervals: Array<[number, number]>): number {
  const points = intervals.flatMap(([s, e]) => [[s, 1] as const, [e, -1] as const]);
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of points) max = Math.max(max, (open += d));
  return max;
}

/** Numbered lines `<tag> <i>/<n>` of one attempt's segment: how many of each tag's 1..n are missing. */
export function missingNumbered(texts: string[]): number {
  const seen = new Map<string, { n: number; got: Set<number> }>();
  for (const t of texts) {
    const m = /^(\S+) (\d+)\/(\d+)$/.exec(t);
    if (!m) continue;
    const e = seen.get(m[1]!) ?? { n: Number(m[3]), got: new Set<number>() };
    e.got.add(Number(m[2]));
    seen.set(m[1]!, e);
  }
  let missing = 0;
  for (const e of seen.values()) missing += e.n - e.got.size;
  return missing;
}

/**
 * The shared checker: reads the database, the store and the engine's container history and
 * fills one table row. Every count is evidence from the system's own records, not from what the
 * scenario believes it did.
 */
export async function check(ctx: {
  scenario: string;
  pool: pg.Pool;
  store: ArtifactStore;
  recorder: DockerEventRecorder;
  installationId: string;
  expect: Expectations;
  startedAt: number;
  settleMs?: number;
}): Promise<Row> {
  const { pool, expect } = ctx;
  const failures = [...(expect.failures ?? [])];
  const notes = [...(expect.notes ?? [])];
  if (!(await settle(pool, ctx.settleMs ?? 120_000))) failures.push('executions still active or unarchived after the settle timeout');

  const { rows: execs } = await pool.query<ExecRow>(
    `select e.id, e.job_id, e.status, e.trigger, e.attempt, e.scheduled_for, e.retry_of, e.retry_number, e.last_seq, e.log_key,
            coalesce((j.definition->>'retries')::int, 0) as retries
       from executions e join jobs j on j.id = e.job_id`,
  );
  const { rows: ticks } = await pool.query<{ job_id: string; fire_time: Date }>(`select job_id, fire_time from ticks where outcome = 'FIRED'`);
  const { rows: attempts } = await pool.query<{ execution_id: string; job_id: string; attempt: number; started_at: Date; finished_at: Date | null }>(
    `select execution_id, job_id, attempt, started_at, finished_at from execution_attempts`,
  );

  // Fires: every recorded tick and every acknowledged submit.
  let firesExpected = ticks.length;
  let lost = 0;
  let duplicated = 0;
  const byJob = new Map<string, ExecRow[]>();
  for (const e of execs) byJob.set(e.job_id, [...(byJob.get(e.job_id) ?? []), e]);
  const bySchedule = new Map<string, number>();
  for (const e of execs) if (e.scheduled_for && e.trigger === 'SCHEDULE') {
    const k = `${e.job_id} ${e.scheduled_for.getTime()}`;
    bySchedule.set(k, (bySchedule.get(k) ?? 0) + 1);
  }
  for (const t of ticks) {
    const n = bySchedule.get(`${t.job_id} ${t.fire_time.getTime()}`) ?? 0;
    if (n === 0) lost++;
    if (n > 1) duplicated += n - 1;
  }
  for (const a of expect.acked ?? []) {
    firesExpected += a.count;
    const made = (byJob.get(a.jobId) ?? []).filter((e) => e.trigger === a.trigger).length;
    const mayHave = a.count + (a.unknown ?? 0);
    if (made < a.count) lost += a.count - made;
    if (made > mayHave) duplicated += made - mayHave;
  }
  // Every execution ends; every failure with retries left has its retry.
  const retried = new Set(execs.filter((e) => e.trigger === 'RETRY').map((e) => `${e.retry_of} ${e.retry_number}`));
  for (const e of execs) {
    if (!FINAL.has(e.status)) lost++;
    if ((e.status === 'FAILED' || e.status === 'TIMED_OUT') && e.retry_number < e.retries && !retried.has(`${e.retry_of ?? e.id} ${e.retry_number + 1}`)) lost++;
  }

  // Attempts: none twice, none overlapping another of its job (database history and the engine's).
  const attemptKeys = new Map<string, number>();
  for (const a of attempts) attemptKeys.set(`${a.execution_id} ${a.attempt}`, (attemptKeys.get(`${a.execution_id} ${a.attempt}`) ?? 0) + 1);
  for (const n of attemptKeys.values()) if (n > 1) duplicated += n - 1;
  const containers = ctx.recorder.of(ctx.installationId);
  const containerKeys = new Map<string, number>();
  for (const c of containers) if (c.startedAt !== null) containerKeys.set(`${c.executionId} ${c.attempt}`, (containerKeys.get(`${c.executionId} ${c.attempt}`) ?? 0) + 1);
  for (const n of containerKeys.values()) if (n > 1) duplicated += n - 1;
  const now = Date.now();
  const jobIntervals = new Map<string, Array<[number, number]>>();
  const containerIntervals = new Map<string, Array<[number, number]>>();
  for (const a of attempts) jobIntervals.set(a.job_id, [...(jobIntervals.get(a.job_id) ?? []), [a.started_at.getTime(), a.finished_at?.getTime() ?? now]]);
  for (const c of containers) if (c.startedAt !== null) {
    containerIntervals.set(c.jobId, [...(containerIntervals.get(c.jobId) ?? []), [c.startedAt, c.diedAt ?? c.destroyedAt ?? now]]);
  }
  let maxPerJob = 0;
  for (const list of [...jobIntervals.values(), ...containerIntervals.values()]) maxPerJob = Math.max(maxPerJob, maxConcurrent(list));
  const executionsRun = new Set(attempts.map((a) => a.execution_id)).size;
  if (containers.length === 0 && executionsRun > 0) notes.push('no container event was recorded');

  // Containers of this installation left on the engine (after the post-finish removals had time).
  const docker = new Dockerode();
  let left = 0;
  for (let i = 0; i < 40; i++) {
    left = (await docker.listContainers({ all: true, filters: { label: [`kiln.installation=${ctx.installationId}`] } })).length;
    if (left === 0) break;
    await delay(500);
  }

  // Log lines: gapless in Postgres, each attempt's numbered lines complete, the archive equal to the rows.
  let linesLost = 0;
  let unarchived = 0;
  let archiveMismatch = 0;
  for (const e of execs) {
    const { rows: lines } = await pool.query<{ seq: number; stream: string; step: number | null; text: string; at: string }>(
      `select seq, stream, step, text, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at from log_chunks where execution_id = $1 order by seq`,
      [e.id],
    );
    linesLost += e.last_seq - lines.length;
    lines.forEach((l, i) => {
      if (l.seq !== i + 1) linesLost++;
    });
    if (e.status === 'SUCCEEDED' || e.status === 'FAILED') {
      // The last attempt's segment starts at its own first line.
      const start = lines.findLastIndex((l) => l.stream === 'SYSTEM' && new RegExp(`^execution #\\d+ \\(attempt ${e.attempt}\\)`).test(l.text));
      linesLost += missingNumbered(lines.slice(Math.max(0, start)).filter((l) => l.stream === 'STDOUT').map((l) => l.text));
    }
    if (e.log_key === null) {
      unarchived++;
      linesLost += lines.length;
      continue;
    }
    const expected = lines.map((l) => JSON.stringify({ seq: l.seq, stream: l.stream, step: l.step, text: l.text, at: l.at }) + '\n').join('');
    const expectedText = lines.map((l) => (l.stream === 'SYSTEM' ? `[kiln] ${l.text}` : l.text) + '\n').join('');
    try {
      // Only a big log has a text object of its own; a small one's is rendered from the NDJSON,
      // which is its byte range of a pack (docs/design.md#archives).
      const [nd, txt] = await Promise.all([
        archivedBytes(pool, ctx.store, e.id),
        hasTextObject(lines.length) ? ctx.store.get(logKeys(e.id).text) : Promise.resolve(Buffer.from(expectedText)),
      ]);
      if (!nd.equals(Buffer.from(expected)) || !txt.equals(Buffer.from(expectedText))) {
        archiveMismatch++;
        const archivedLines = nd.toString().split('\n').filter(Boolean).length;
        linesLost += Math.max(1, lines.length - archivedLines);
      }
    } catch (err) {
      unarchived++;
      linesLost += lines.length;
      notes.push(`archive of ${e.id} unreadable: ${(err as Error).message}`);
    }
  }
  if (unarchived > 0) failures.push(`${unarchived} execution log(s) not archived`);
  if (archiveMismatch > 0) failures.push(`${archiveMismatch} archived log(s) differ from the stored lines`);

  const recoveryMs = expect.recoveryMs && expect.recoveryMs.length > 0 ? Math.max(...expect.recoveryMs) : null;
  if (lost > 0) failures.push(`${lost} lost`);
  if (duplicated > 0) failures.push(`${duplicated} duplicated`);
  if (maxPerJob > 1) failures.push(`${maxPerJob} executions of one job at once`);
  if (left > 0) failures.push(`${left} container(s) left behind`);
  if (linesLost > 0) failures.push(`${linesLost} log line(s) lost`);
  if (recoveryMs !== null && expect.maxRecoveryMs !== undefined && recoveryMs > expect.maxRecoveryMs) failures.push(`recovery ${recoveryMs} ms > ${expect.maxRecoveryMs} ms`);
  return {
    scenario: ctx.scenario,
    firesExpected,
    executionsRun,
    lost,
    duplicated,
    maxConcurrentPerJob: maxPerJob,
    containersLeft: left,
    logLinesLost: linesLost,
    recoveryMs,
    seconds: Math.round((Date.now() - ctx.startedAt) / 1000),
    failures,
    notes,
  };
}

/** The summary table, one row per scenario. */
export function formatTable(rows: Row[]): string {
  const head = ['scenario', 'fires exp.', 'exec. run', 'lost', 'dup.', 'max conc/job', 'containers left', 'log lines lost', 'recovery', 'time', 'result'];
  const body = rows.map((r) => [
    r.scenario,
    String(r.firesExpected),
    String(r.executionsRun),
    String(r.lost),
    String(r.duplicated),
    String(r.maxConcurrentPerJob),
    String(r.containersLeft),
    String(r.logLinesLost),
    r.recoveryMs === null ? '-' : `${(r.recoveryMs / 1000).toFixed(1)} s`,
    `${r.seconds} s`,
    r.failures.length === 0 ? 'PASS' : 'FAIL',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('-+-'), ...body.map(line)];
  for (const r of rows) {
    for (const f of r.failures) out.push(`  ${r.scenario}: FAIL ${f}`);
    for (const n of r.notes) out.push(`  ${r.scenario}: ${n}`);
  }
  return out.join('\n');
}

/** An execution's archived NDJSON, wherever its row says it is; throws when it is not archived. */
async function archivedBytes(pool: pg.Pool, store: ArtifactStore, executionId: string): Promise<Buffer> {
  const stream = await archivedNdjsonOf(pool, store, executionId);
  if (stream === null) throw new Error('not archived');
  return buffer(stream);
}
