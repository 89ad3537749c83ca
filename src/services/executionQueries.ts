import type { EntityManager } from '@mikro-orm/postgresql';
import type pg from 'pg';
import type { LogChunkFields } from '../entities/LogChunk.js';
import { ExecutionStep, type ArtifactRecord, type Execution, type ExecutionStatus, type ExecutionTrigger, type StepStatus } from '../entities/index.js';
import { ValidationError } from '../errors.js';
import { DEFAULT_PAGE, MAX_PAGE, decodeCursor, isUuid, pageSize, toPage, type Page } from './paging.js';

export interface ExecutionFilter {
  jobId?: string | null;
  status?: ExecutionStatus | null;
  first?: number | null;
  after?: string | null;
}

/**
 * An execution as a list shows it: plain data read by SQL, not an ORM entity. Hydrating a page
 * into entities (identity map, change-tracking snapshot) costs more than the query itself, and a
 * list never writes. Every field the API reads from a listed execution; never the plan. An
 * `Execution` entity is one too, so field resolvers take either.
 */
export type ExecutionView = Pick<
  Execution,
  | 'id' | 'owner' | 'number' | 'status' | 'trigger' | 'attempt' | 'scheduledFor' | 'queuedAt' | 'startedAt' | 'finishedAt'
  | 'exitCode' | 'error' | 'logKey' | 'lastSeq' | 'artifacts' | 'retryOf' | 'createdAt'
> & {
  job: { id: string };
  /** Read with the page when it was asked for `withSteps`; otherwise absent. */
  steps?: StepView[];
};

/** A step as a list shows it (see ExecutionView); an `ExecutionStep` entity is one too. */
export type StepView = Pick<ExecutionStep, 'index' | 'name' | 'status' | 'exitCode' | 'startedAt' | 'finishedAt'>;

/** A cursor's time: UTC ISO 8601 with up to microseconds (older cursors carry milliseconds). */
const CURSOR_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

/**
 * The (created_at, id) a cursor points after. created_at travels as Postgres's own text, to the
 * microsecond: a JavaScript Date keeps milliseconds, and a cursor cut to the millisecond would
 * skip the rows created later in the same millisecond than the one it points at.
 */
function cursorKey(cursor: string): [string, string] {
  const [at, id] = decodeCursor(cursor, ['string', 'string']) as [string, string];
  if (!CURSOR_TIME.test(at) || Number.isNaN(Date.parse(at)) || !isUuid(id)) throw new ValidationError('invalid cursor');
  return [at, id];
}

export interface ExecutionRecord {
  id: string;
  job_id: string;
  owner: string;
  number: number;
  status: ExecutionStatus;
  trigger: ExecutionTrigger;
  attempt: number;
  scheduled_for: Date | null;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  exit_code: number | null;
  error: string | null;
  log_key: string | null;
  last_seq: number;
  artifacts: ArtifactRecord[];
  retry_of: string | null;
  created_at: Date;
  /** created_at as cursor text, to the microsecond. */
  cursor_at: string;
  /** `withSteps` only: [index, name, status, exit_code, started_at, finished_at] per step, in order. */
  steps?: Array<[number, string, StepStatus, number | null, string | null, string | null]> | null;
}

export const LIST_COLUMNS = `e.id, e.job_id, e.owner, e.number, e.status, e.trigger, e.attempt, e.scheduled_for, e.queued_at, e.started_at,
  e.finished_at, e.exit_code, e.error, e.log_key, e.last_seq, e.artifacts, e.retry_of, e.created_at,
  to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as cursor_at`;

/**
 * A select-list subquery runs only for the rows the limit lets through: one probe of the
 * (execution_id, index) unique index per execution shown.
 */
const STEPS_COLUMN = `(select json_agg(json_build_array(s.index, s.name, s.status, s.exit_code, s.started_at, s.finished_at) order by s.index)
    from execution_steps s where s.execution_id = e.id) as steps`;

/**
 * Page sizes whose statements are prepared once per connection (named): planning the page took
 * longer than running it (0.8 ms against 0.5 ms, a job with 100,000 executions). The sizes
 * clients ask for, so that what a connection keeps stays bounded whatever `first` callers send
 * (at most 4 shapes x 2 x these sizes). The limit stays a literal: a generic plan with a
 * parameter for it would assume a tenth of the table. A status filter is never named: a plan
 * generic in the status could suit one status and not another (partial indexes serve some).
 */
const NAMED_PAGE_SIZES = new Set([10, DEFAULT_PAGE, 25, 50, MAX_PAGE]);

/**
 * The owner's executions, newest first, keyset-paginated on (created_at, id) so pages neither
 * skip nor repeat rows while new executions arrive. One statement whatever the depth: the row
 * comparison `(created_at, id) < (...)` is an index condition on the (job_id | owner, created_at
 * desc, id desc) indexes, where the equivalent `a < x or (a = x and b < y)` is only a filter and
 * made a page a million rows back read the million rows before it.
 *
 * `withSteps` reads each execution's steps in the same statement, for callers that will show
 * them: one round trip for a page instead of two.
 */
export async function listExecutions(pool: pg.Pool, owner: string, filter: ExecutionFilter, opts: { withSteps?: boolean } = {}): Promise<Page<ExecutionView>> {
  const size = pageSize(filter.first);
  const params: unknown[] = [owner];
  const where = ['e.owner = $1'];
  if (filter.jobId !== undefined && filter.jobId !== null) {
    if (!isUuid(filter.jobId)) return { items: [], hasNextPage: false, endCursor: null };
    params.push(filter.jobId);
    where.push(`e.job_id = $${params.length}`);
  }
  if (filter.status) {
    params.push(filter.status);
    where.push(`e.status = $${params.length}`);
  }
  if (filter.after) {
    params.push(...cursorKey(filter.after));
    where.push(`(e.created_at, e.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  const text = `select ${LIST_COLUMNS}${opts.withSteps ? `, ${STEPS_COLUMN}` : ''}
       from executions e where ${where.join(' and ')} order by e.created_at desc, e.id desc limit ${size + 1}`;
  const named = !filter.status && NAMED_PAGE_SIZES.has(size);
  const name = `kiln_list_executions_${opts.withSteps ? 's' : ''}${params.length}_${size}`;
  const { rows } = await pool.query<ExecutionRecord>(named ? { name, text, values: params } : { text, values: params });
  const page = toPage(rows, size, (r) => [r.cursor_at, r.id]);
  return { ...page, items: page.items.map(({ node, cursor }) => ({ node: executionView(node), cursor })) };
}

export function executionView(r: ExecutionRecord): ExecutionView {
  const view: ExecutionView = {
    id: r.id,
    job: { id: r.job_id },
    owner: r.owner,
    number: r.number,
    status: r.status,
    trigger: r.trigger,
    attempt: r.attempt,
    scheduledFor: r.scheduled_for,
    queuedAt: r.queued_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    exitCode: r.exit_code,
    error: r.error,
    logKey: r.log_key,
    lastSeq: r.last_seq,
    artifacts: r.artifacts,
    retryOf: r.retry_of,
    createdAt: r.created_at,
  };
  if (r.steps !== undefined) {
    const time = (t: string | null) => (t === null ? null : new Date(t));
    view.steps = (r.steps ?? []).map(([index, name, status, exitCode, startedAt, finishedAt]) => ({ index, name, status, exitCode, startedAt: time(startedAt), finishedAt: time(finishedAt) }));
  }
  return view;
}

/**
 * The steps of several executions in one statement, each execution's in index order; an id
 * with no steps (or no such execution) maps to []. Callers scope the ids to an owner: these are
 * the steps of executions already read for that owner.
 */
export async function stepsOfExecutions(pool: pg.Pool, executionIds: readonly string[]): Promise<Map<string, StepView[]>> {
  const steps = new Map<string, StepView[]>(executionIds.map((id) => [id, []]));
  if (executionIds.length === 0) return steps;
  const { rows } = await pool.query<{ execution_id: string; index: number; name: string; status: StepStatus; exit_code: number | null; started_at: Date | null; finished_at: Date | null }>(
    `select execution_id, index, name, status, exit_code, started_at, finished_at
       from execution_steps where execution_id = any($1::uuid[]) order by execution_id, index`,
    [[...steps.keys()]],
  );
  for (const r of rows) {
    steps.get(r.execution_id)?.push({ index: r.index, name: r.name, status: r.status, exitCode: r.exit_code, startedAt: r.started_at, finishedAt: r.finished_at });
  }
  return steps;
}

export async function stepsOf(em: EntityManager, executionId: string): Promise<ExecutionStep[]> {
  return em.find(ExecutionStep, { execution: executionId }, { orderBy: { index: 'asc' } });
}

export const DEFAULT_LOG_LIMIT = 1000;
export const MAX_LOG_LIMIT = 10_000;

/**
 * Bytes a log line counts for besides its text when a page is cut at its byte cap: its other
 * fields as JSON. The cost rule counts lines the same way (http/queryWeights.ts).
 */
export const LOG_LINE_OVERHEAD_BYTES = 128;

/**
 * Log lines with seq > afterSeq, in order: at most `limit` of them, and no more than `maxBytes`
 * counting each line as its text plus LOG_LINE_OVERHEAD_BYTES, but always at least one line when
 * there is one. A page cut short by the byte cap is no sign of the end: callers go on from its last
 * seq until a page is empty (docs/design.md#query-cost).
 *
 * The cut is found by Postgres over the lines' sizes (`octet_length` reads a stored text's length
 * from its header without decompressing it), so a page of 16 KiB lines never reaches this
 * process beyond the cap.
 */
export async function logsOf(pool: pg.Pool, executionId: string, afterSeq = 0, limit = DEFAULT_LOG_LIMIT, maxBytes = Number.MAX_SAFE_INTEGER): Promise<LogChunkFields[]> {
  if (!Number.isInteger(afterSeq) || afterSeq < 0) throw new ValidationError('afterSeq must be a non-negative integer');
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LOG_LIMIT) throw new ValidationError(`limit must be between 1 and ${MAX_LOG_LIMIT}`);
  if (!isUuid(executionId)) return [];
  const { rows } = await pool.query<LogChunkFields>(
    `with page as (
       select seq, sum(octet_length(text) + ${LOG_LINE_OVERHEAD_BYTES}) over (order by seq rows unbounded preceding) as running
         from log_chunks where execution_id = $1 and seq > $2 order by seq limit $3
     )
     select seq, stream, step, text, at from log_chunks
      where execution_id = $1 and seq > $2
        and seq <= (select max(seq) from page where running <= $4 or seq = (select min(seq) from page))
      order by seq limit $3`,
    [executionId, afterSeq, limit, maxBytes],
  );
  return rows;
}
