import { DeliveriesDocument, KilnApiError, type DeliveriesQuery } from '@kiln/sdk';
import { UsageError } from './clientConfig.js';
import { resolveJob, type CommandContext, type ExitCode } from './commands.js';
import { MAX_PAGE, type JsonFlag } from './jobCommands.js';
import type { Colour } from './output.js';
import { table } from './output.js';

type Delivery = NonNullable<DeliveriesQuery['job']>['deliveries']['edges'][number]['node'];

function statusColour(status: string): Colour {
  return status === 'DELIVERED' ? 'green' : status === 'FAILED' ? 'red' : 'yellow';
}

/** The last try's answer or error, on one line. */
function outcome(d: Delivery): string {
  const code = d.responseCode === null ? '' : `HTTP ${d.responseCode}`;
  const error = d.lastError?.replace(/\s+/g, ' ') ?? '';
  return [code, error].filter(Boolean).join(' ').slice(0, 120) || '-';
}

/**
 * `kiln deliveries <job> [--limit n]`: the job's notification deliveries, newest first: event,
 * channel, target, status, tries and the last answer (docs/design.md#notifications).
 */
export async function deliveries(ctx: CommandContext, [ref]: string[], opts: JsonFlag & { limit: number }): Promise<ExitCode> {
  if (opts.limit < 1 || opts.limit > MAX_PAGE) throw new UsageError(`--limit takes 1 to ${MAX_PAGE}, got ${opts.limit}`);
  const client = await ctx.client();
  const found = await resolveJob(client, ref);
  const { job } = await client.request(DeliveriesDocument, { jobId: found.id, first: opts.limit });
  if (job === null) throw new KilnApiError(`no job "${ref}"`, 'NOT_FOUND');
  const list = job.deliveries.edges.map((e) => e.node);
  if (opts.json) {
    ctx.out.json({ job: { id: job.id, name: job.name }, deliveries: list });
    return 0;
  }
  if (list.length === 0) {
    ctx.out.note(`${job.name} has no notification deliveries yet`);
    return 0;
  }
  const rows = [['CREATED', 'EVENT', 'CHANNEL', 'TARGET', 'STATUS', 'TRIES', 'LAST ANSWER', 'ID']];
  for (const d of list) {
    const event = d.count > 1 ? `${d.event} x${d.count}` : d.event;
    rows.push([d.createdAt, event, d.channel, d.target, ctx.out.paint(statusColour(d.status), d.status), String(d.attempts), outcome(d), d.id]);
  }
  for (const line of table(rows)) ctx.out.line(line);
  return 0;
}
