import { Arg, Ctx, FieldResolver, Int, Resolver, Root } from 'type-graphql';
import type { Job, Tick } from '../entities/index.js';
import { lastTicksOfJobs, MAX_RECENT_RUNS, recentRunsOfJobs } from '../services/boardQueries.js';
import { ValidationError } from '../errors.js';
import type { ExecutionView } from '../services/executionQueries.js';
import { Batcher, batcherOf } from './batch.js';
import type { Context } from './context.js';
import { ExecutionType } from './types/execution.js';
import { JobType } from './types/job.js';
import { TickType } from './types/tick.js';

const LAST_TICK = Symbol('lastTick');
/** One batcher per strip length asked for: aliases may ask for two lengths in one request. */
const RECENT_RUNS = new Map<number, symbol>();

function recentRunsBatcher(ctx: Context, count: number): Batcher<string, ExecutionView[]> {
  let kind = RECENT_RUNS.get(count);
  if (kind === undefined) RECENT_RUNS.set(count, (kind = Symbol(`recentRuns${count}`)));
  return batcherOf(ctx, kind, () => new Batcher((ids) => recentRunsOfJobs(ctx.deps.pool, ids, count), () => []));
}

/**
 * The fields of a job the board shows for every row (docs/design.md#web-board), each read for all
 * the jobs of a page in one statement (batch.ts).
 */
@Resolver(() => JobType)
export class JobBoardResolver {
  @FieldResolver(() => [ExecutionType], {
    description: `The job's newest executions, newest first (count 1..${MAX_RECENT_RUNS}, default 20): the board's strip of recent runs.`,
  })
  recentRuns(@Root() job: Job, @Arg('count', () => Int, { nullable: true, defaultValue: 20 }) count: number, @Ctx() ctx: Context): Promise<ExecutionView[]> {
    if (!Number.isInteger(count) || count < 1 || count > MAX_RECENT_RUNS) {
      // Checked before batching, so one bad alias fails alone, not the batch of its siblings.
      return Promise.reject(new ValidationError(`count must be between 1 and ${MAX_RECENT_RUNS}`));
    }
    return recentRunsBatcher(ctx, count).load(job.id);
  }

  @FieldResolver(() => TickType, { nullable: true, description: "The ledger's newest tick: what became of the job's last fire time (null before the first)." })
  lastTick(@Root() job: Job, @Ctx() ctx: Context): Promise<Tick | null> {
    return batcherOf(ctx, LAST_TICK, () => new Batcher<string, Tick | null>((ids) => lastTicksOfJobs(ctx.deps.pool, ids), () => null)).load(job.id);
  }
}
