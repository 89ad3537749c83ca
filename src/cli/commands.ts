import { readFile } from 'node:fs/promises';
import {
  KilnApiError,
  type KilnClient,
  CancelExecutionDocument,
  ExecutionDocument,
  ExecutionLogPageDocument,
  ExecutionsDocument,
  JobDocument,
  JobsDocument,
  SubmitJobDocument,
  TriggerJobDocument,
  type JobFieldsFragment,
} from '@kiln/sdk';
import { compileJobFile } from '../jobfile/compile.js';
import { UsageError } from './clientConfig.js';
import { followExecution, renderLogLine, reportOutcome } from './follow.js';
import { formatDuration, table, type Output } from './output.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * What every command gets. `client` is created on first use (`validate` needs no server), and
 * asynchronously: a token stored by `kiln login` may need refreshing first.
 */
export interface CommandContext {
  out: Output;
  client(): Promise<KilnClient>;
}

/** Exit status of a command. */
export type ExitCode = number;

async function readJobFile(file: string | undefined): Promise<string> {
  if (!file) throw new UsageError('name the job file, e.g. jobs.yaml');
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A job by id or by name (names are unique per owner). */
export async function resolveJob(client: KilnClient, ref: string | undefined): Promise<JobFieldsFragment> {
  if (!ref) throw new UsageError('name the job (its id or its name)');
  if (UUID.test(ref)) {
    const { job } = await client.request(JobDocument, { id: ref });
    if (job !== null) return job;
  }
  for (let after: string | null = null; ; ) {
    const { jobs }: { jobs: { edges: Array<{ node: JobFieldsFragment }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
      await client.request(JobsDocument, { first: 100, after });
    const found = jobs.edges.find((e) => e.node.name === ref);
    if (found) return found.node;
    if (!jobs.pageInfo.hasNextPage) break;
    after = jobs.pageInfo.endCursor;
  }
  throw new KilnApiError(`no job "${ref}"`, 'NOT_FOUND');
}

/**
 * `kiln validate <file>`: checks a job file with the server's own validator, offline. Prints
 * each diagnostic as `file:line:col: message` and exits 1 when there is an error.
 */
export async function validate(ctx: CommandContext, [file]: string[]): Promise<ExitCode> {
  const source = await readJobFile(file);
  const result = compileJobFile(source);
  const diagnostics = result.ok ? result.warnings : result.diagnostics;
  for (const d of diagnostics) {
    const kind = d.severity === 'warning' ? `${ctx.out.paint('yellow', 'warning')}: ` : '';
    ctx.out.line(`${file}:${d.line}:${d.column}: ${kind}${d.message} (${d.path})`);
  }
  if (!result.ok) {
    const n = result.diagnostics.filter((d) => d.severity !== 'warning').length;
    ctx.out.note(ctx.out.paintErr('red', `${file}: ${n} error${n === 1 ? '' : 's'}`));
    return 1;
  }
  ctx.out.note(`${file}: ${ctx.out.paintErr('green', 'valid')}, ${result.jobs.length} job${result.jobs.length === 1 ? '' : 's'}`);
  return 0;
}

/** `kiln submit <file> [--follow]`: stores the jobs; with --follow, prints each one-off run's log. */
export async function submit(ctx: CommandContext, [file]: string[], opts: { follow: boolean }): Promise<ExitCode> {
  const source = await readJobFile(file);
  const client = await ctx.client();
  let jobs: JobFieldsFragment[];
  try {
    ({ submitJob: { jobs } } = await client.request(SubmitJobDocument, { spec: source }));
  } catch (err) {
    if (err instanceof KilnApiError && err.diagnostics.length > 0) {
      for (const d of err.diagnostics) ctx.out.line(`${file}:${d.line}:${d.column}: ${d.message} (${d.path})`);
      return 1;
    }
    throw err;
  }
  const queued = jobs.filter((j) => j.schedule === null && j.lastExecution !== null);
  for (const j of jobs) {
    const when = j.schedule === null ? (j.lastExecution ? `queued as #${j.lastExecution.number}` : 'one-off') : `next run ${j.nextRunAt ?? '-'}`;
    ctx.out.note(`${ctx.out.paintErr('green', 'submitted')} ${j.name} (${j.id}), ${when}`);
  }
  if (!opts.follow) return 0;
  if (queued.length === 0) {
    ctx.out.note('nothing to follow: the file has no one-off job');
    return 0;
  }
  let failed = false;
  for (const j of queued) {
    const label = `${j.name} #${j.lastExecution!.number}`;
    const e = await followExecution(client, ctx.out, j.lastExecution!.id, label);
    reportOutcome(ctx.out, label, e);
    failed ||= e.status !== 'SUCCEEDED';
  }
  return failed ? 1 : 0;
}

/** `kiln jobs [--json]`: the caller's jobs with their schedule, next run and last outcome. */
export async function jobs(ctx: CommandContext, opts: { json: boolean }): Promise<ExitCode> {
  const client = await ctx.client();
  const all: JobFieldsFragment[] = [];
  const rows = [['NAME', 'SCHEDULE', 'NEXT RUN', 'LAST', 'ID']];
  for (let after: string | null = null; ; ) {
    const { jobs: page }: { jobs: { edges: Array<{ node: JobFieldsFragment }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
      await client.request(JobsDocument, { first: 100, after });
    for (const { node: j } of page.edges) {
      all.push(j);
      const last = j.lastExecution ? `#${j.lastExecution.number} ${ctx.out.status(j.lastExecution.status)}` : '-';
      rows.push([j.name, j.schedule ?? '(one-off)', j.paused ? 'paused' : (j.nextRunAt ?? '-'), last, j.id]);
    }
    if (!page.pageInfo.hasNextPage) break;
    after = page.pageInfo.endCursor;
  }
  if (opts.json) ctx.out.json(all);
  else if (rows.length === 1) ctx.out.note('no jobs yet: `kiln submit jobs.yaml` adds some');
  else for (const line of table(rows)) ctx.out.line(line);
  return 0;
}

/** `kiln history <job> [--limit n] [--json]`: the job's executions, newest first. */
export async function history(ctx: CommandContext, [ref]: string[], opts: { limit: number; json: boolean }): Promise<ExitCode> {
  const client = await ctx.client();
  const job = await resolveJob(client, ref);
  const { executions } = await client.request(ExecutionsDocument, { jobId: job.id, first: Math.min(Math.max(opts.limit, 1), 100) });
  if (opts.json) {
    ctx.out.json(executions.edges.map((e) => e.node));
    return 0;
  }
  if (executions.edges.length === 0) {
    ctx.out.note(`${job.name} has not run yet`);
    return 0;
  }
  const rows = [['#', 'STATUS', 'TRIGGER', 'STARTED', 'DURATION', 'ID']];
  for (const { node: e } of executions.edges) {
    rows.push([String(e.number), ctx.out.status(e.status), e.trigger, e.startedAt ?? '-', formatDuration(e.durationMs), e.id]);
  }
  for (const line of table(rows)) ctx.out.line(line);
  return 0;
}

/** `kiln logs <execution> [--follow] [--after n]`: the log so far, or followed to its end. */
export async function logs(ctx: CommandContext, [id]: string[], opts: { follow: boolean; after: number }): Promise<ExitCode> {
  if (!id) throw new UsageError('name the execution (its id)');
  const client = await ctx.client();
  if (opts.follow) {
    const e = await followExecution(client, ctx.out, id, `execution ${id}`, opts.after);
    reportOutcome(ctx.out, `#${e.number}`, e);
    return e.status === 'SUCCEEDED' ? 0 : 1;
  }
  for (let after = opts.after; ; ) {
    const { execution } = await client.request(ExecutionLogPageDocument, { id, afterSeq: after, limit: 10_000 });
    if (execution === null) throw new KilnApiError(`execution ${id} not found`, 'NOT_FOUND');
    // A page may stop short of its limit at the server's byte cap: only an empty page is the end.
    if (execution.logs.length === 0) return 0;
    for (const line of execution.logs) ctx.out.line(renderLogLine(ctx.out, line));
    after = execution.logs[execution.logs.length - 1]!.seq;
  }
}

/** `kiln trigger <job> [--follow]`: runs the job now. */
export async function trigger(ctx: CommandContext, [ref]: string[], opts: { follow: boolean }): Promise<ExitCode> {
  const client = await ctx.client();
  const job = await resolveJob(client, ref);
  const { triggerJob: e } = await client.request(TriggerJobDocument, { id: job.id });
  ctx.out.note(`${ctx.out.paintErr('green', 'queued')} ${job.name} #${e.number}`);
  ctx.out.line(e.id);
  if (!opts.follow) return 0;
  const label = `${job.name} #${e.number}`;
  const finished = await followExecution(client, ctx.out, e.id, label);
  reportOutcome(ctx.out, label, finished);
  return finished.status === 'SUCCEEDED' ? 0 : 1;
}

/** `kiln cancel <execution>`: cancels a queued or running execution. */
export async function cancel(ctx: CommandContext, [id]: string[]): Promise<ExitCode> {
  if (!id) throw new UsageError('name the execution (its id)');
  const client = await ctx.client();
  const { cancelExecution: e } = await client.request(CancelExecutionDocument, { id });
  const state = e.status === 'RUNNING' ? `${ctx.out.status(e.status)} (cancel requested; it stops shortly)` : ctx.out.status(e.status);
  ctx.out.line(`#${e.number} ${e.id} ${state}`);
  return 0;
}

/** `kiln status <execution>`: one execution and its steps. */
export async function status(ctx: CommandContext, [id]: string[]): Promise<ExitCode> {
  if (!id) throw new UsageError('name the execution (its id)');
  const { execution: e } = await (await ctx.client()).request(ExecutionDocument, { id });
  if (e === null) throw new KilnApiError(`execution ${id} not found`, 'NOT_FOUND');
  ctx.out.line(`${e.job.name} #${e.number} ${ctx.out.status(e.status)} (${e.trigger}, attempt ${e.attempt}) ${formatDuration(e.durationMs)}${e.error ? `: ${e.error}` : ''}`);
  for (const s of e.steps) ctx.out.line(`  ${s.index + 1}. ${ctx.out.status(s.status)} ${s.name}${s.exitCode !== null ? ` (exit ${s.exitCode})` : ''}`);
  return 0;
}
