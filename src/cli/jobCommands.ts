import { DeleteJobDocument, KilnApiError, PauseJobDocument, ResumeJobDocument, TickLedgerDocument, type JobFieldsFragment, type TickLedgerQuery } from '@kiln/sdk';
import { UsageError } from './clientConfig.js';
import { resolveJob, type CommandContext, type ExitCode } from './commands.js';
import type { Colour } from './output.js';
import { table } from './output.js';

/** Options every listing command takes. */
export interface JsonFlag {
  json: boolean;
}

/** The most rows one page of the API holds (services/paging.ts). */
export const MAX_PAGE = 100;

function describeJob(ctx: CommandContext, j: JobFieldsFragment): string {
  if (j.paused) return `${j.name} ${ctx.out.paint('yellow', 'paused')} (${j.id})`;
  const next = j.schedule === null ? 'one-off' : `next run ${j.nextRunAt ?? '-'}`;
  return `${j.name} ${ctx.out.paint('green', 'active')}, ${next} (${j.id})`;
}

/** `kiln pause <job>`: no fire times are run until it is resumed; they go in the ledger as PAUSED. */
export async function pause(ctx: CommandContext, [ref]: string[], opts: JsonFlag): Promise<ExitCode> {
  const client = await ctx.client();
  const job = await resolveJob(client, ref);
  const { pauseJob } = await client.request(PauseJobDocument, { id: job.id });
  if (opts.json) ctx.out.json(pauseJob);
  else ctx.out.line(describeJob(ctx, pauseJob));
  return 0;
}

/** `kiln resume <job>`: fires again from the next fire time on. */
export async function resume(ctx: CommandContext, [ref]: string[], opts: JsonFlag): Promise<ExitCode> {
  const client = await ctx.client();
  const job = await resolveJob(client, ref);
  const { resumeJob } = await client.request(ResumeJobDocument, { id: job.id });
  if (opts.json) ctx.out.json(resumeJob);
  else ctx.out.line(describeJob(ctx, resumeJob));
  return 0;
}

/** `kiln delete <job>`: removes the job with its history and ledger; its queued or running executions are cancelled. */
export async function remove(ctx: CommandContext, [ref]: string[], opts: JsonFlag): Promise<ExitCode> {
  const client = await ctx.client();
  const job = await resolveJob(client, ref);
  const { deleteJob } = await client.request(DeleteJobDocument, { id: job.id });
  if (!deleteJob) throw new KilnApiError(`job "${job.name}" was already gone`, 'NOT_FOUND');
  if (opts.json) ctx.out.json({ deleted: true, id: job.id, name: job.name });
  else ctx.out.line(`${job.name} ${ctx.out.paint('red', 'deleted')} (${job.id})`);
  return 0;
}

type Tick = NonNullable<TickLedgerQuery['job']>['ticks']['edges'][number]['node'];

function outcomeColour(outcome: Tick['outcome']): Colour {
  switch (outcome) {
    case 'FIRED':
      return 'green';
    case 'MISSED':
      return 'red';
    case 'SKIPPED_OVERLAP':
      return 'yellow';
    default:
      return 'dim';
  }
}

/**
 * `kiln ticks <job> [--limit n] [--after cursor]`: one page of the job's tick ledger, newest
 * fire time first; when there is more, stderr says how to ask for the next page.
 */
export async function ticks(ctx: CommandContext, [ref]: string[], opts: JsonFlag & { limit: number; after: string | null }): Promise<ExitCode> {
  if (opts.limit < 1 || opts.limit > MAX_PAGE) throw new UsageError(`--limit takes 1 to ${MAX_PAGE}, got ${opts.limit}`);
  const client = await ctx.client();
  const found = await resolveJob(client, ref);
  const { job } = await client.request(TickLedgerDocument, { id: found.id, first: opts.limit, after: opts.after });
  if (job === null) throw new KilnApiError(`no job "${ref}"`, 'NOT_FOUND');
  const { edges, pageInfo } = job.ticks;
  const next = pageInfo.hasNextPage ? pageInfo.endCursor : null;
  if (opts.json) {
    ctx.out.json({ job: { id: job.id, name: job.name }, ticks: edges.map((e) => e.node), nextCursor: next });
    return 0;
  }
  if (edges.length === 0) {
    ctx.out.note(opts.after === null ? `${job.name} has no ticks yet: its first fire time has not come` : 'no more ticks');
    return 0;
  }
  const rows = [['FIRE TIME', 'OUTCOME', 'EXECUTION']];
  for (const { node: t } of edges) {
    const outcome = ctx.out.paint(outcomeColour(t.outcome), t.outcome) + (t.catchUp ? ' (catch-up)' : '');
    const run = t.execution ? `#${t.execution.number} ${ctx.out.status(t.execution.status)} ${t.execution.id}` : '-';
    rows.push([t.fireTime, outcome, run]);
  }
  for (const line of table(rows)) ctx.out.line(line);
  if (next !== null) ctx.out.note(ctx.out.paintErr('dim', `older ticks: kiln ticks ${quote(ref!)} --limit ${opts.limit} --after ${next}`));
  return 0;
}

/** A job name as a shell reads it back: quoted when it has anything but safe characters. */
function quote(s: string): string {
  return /^[\w.@:/-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
