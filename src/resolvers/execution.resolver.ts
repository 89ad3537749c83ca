import type { GraphQLResolveInfo } from 'graphql';
import { Arg, Ctx, FieldResolver, Float, ID, Info, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Execution, Job } from '../entities/index.js';
import type { LogChunkFields } from '../entities/LogChunk.js';
import { stepsOfSnapshot } from '../events/executionSnapshot.js';
import { cancelExecution } from '../services/cancelExecution.js';
import { runDetailsOf } from '../services/runDetails.js';
import { artifactsOf, logUrlOf } from '../services/executionFiles.js';
import { DEFAULT_LOG_LIMIT, listExecutions, logsOf, stepsOfExecutions, type ExecutionView, type StepView } from '../services/executionQueries.js';
import { findExecution } from '../services/findOwned.js';
import { jobsById } from '../services/jobQueries.js';
import { DEFAULT_LOG_SEARCH_MATCHES, lastStoredSeq, searchLog, type LogSearchResult } from '../services/logSearch.js';
import { Batcher, batcherOf } from './batch.js';
import { toConnection } from './connection.js';
import { selects } from './selection.js';
import type { Context } from './context.js';
import { ExecutionStatus } from './types/enums.js';
import { ArtifactType, ExecutionConnection, ExecutionType, LogChunkType, LogSearchResultType, StepType } from './types/execution.js';
import { JobType } from './types/job.js';

const STEPS = Symbol('steps');
const JOBS = Symbol('jobs');

/** The request's batcher of `steps` not read with their page: one statement for the rows resolved together. */
function stepsBatcher(ctx: Context): Batcher<string, StepView[]> {
  return batcherOf(ctx, STEPS, () => new Batcher((ids) => stepsOfExecutions(ctx.deps.pool, ids), () => []));
}

/** The request's batcher of `job`: a page of one job's history asks for that one job once. */
function jobBatcher(ctx: Context): Batcher<string, Job | null> {
  return batcherOf(ctx, JOBS, () => new Batcher((ids) => jobsById(ctx.em, ids), () => null));
}

@Resolver(() => ExecutionType)
export class ExecutionResolver {
  @Query(() => ExecutionType, { nullable: true, description: "One of the caller's executions; null for an unknown id or another owner's." })
  execution(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Execution | null> {
    return findExecution(ctx.em, ctx.principal.sub, id);
  }

  @Query(() => ExecutionConnection, { description: "The caller's executions, newest first." })
  async executions(
    @Arg('jobId', () => ID, { nullable: true }) jobId: string | null,
    @Arg('status', () => ExecutionStatus, { nullable: true }) status: ExecutionStatus | null,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
    @Info() info: GraphQLResolveInfo,
  ) {
    const withSteps = selects(info, ['edges', 'node', 'steps']);
    return toConnection(await listExecutions(ctx.deps.pool, ctx.principal.sub, { jobId, status, first, after }, { withSteps }));
  }

  @Mutation(() => ExecutionType, { description: 'Cancels a queued or running execution; a finished one is returned unchanged.' })
  cancelExecution(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Execution> {
    return cancelExecution(ctx.deps, ctx.principal.sub, id);
  }

  @FieldResolver(() => JobType)
  async job(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<Job> {
    const job = await jobBatcher(ctx).load(execution.job.id);
    // An execution's job cannot vanish while the execution exists (on delete cascade).
    if (job === null) throw new Error(`job ${execution.job.id} of execution ${execution.id} not found`);
    return job;
  }

  @FieldResolver(() => ExecutionType, { nullable: true, description: 'For a RETRY: the first execution of the chain.' })
  retryOf(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<Execution | null> | null {
    return execution.retryOf === null ? null : ctx.em.findOne(Execution, { id: execution.retryOf, owner: ctx.principal.sub });
  }

  @FieldResolver(() => Float, { nullable: true, description: 'finishedAt - startedAt in milliseconds.' })
  durationMs(@Root() execution: ExecutionView): number | null {
    if (!execution.startedAt || !execution.finishedAt) return null;
    return execution.finishedAt.getTime() - execution.startedAt.getTime();
  }

  @FieldResolver(() => [StepType])
  steps(@Root() execution: ExecutionView, @Ctx() ctx: Context): StepView[] | Promise<StepView[]> {
    // Read with its page, or carried by an executionUpdated event as of that event (only
    // entities are snapshots); otherwise batched with the other rows of the list being resolved.
    // Not async: steps at hand are answered without a promise per row for graphql-js to await.
    const carried = execution.steps ?? (execution instanceof Execution ? stepsOfSnapshot(execution) : undefined);
    return carried ?? stepsBatcher(ctx).load(execution.id);
  }

  @FieldResolver(() => [LogChunkType], {
    description: 'Lines with seq > afterSeq, in order; limit at most 10000. A page also stops at KILN_LOG_PAGE_MAX_BYTES (8 MiB by default): go on from its last seq until a page is empty.',
  })
  logs(
    @Root() execution: ExecutionView,
    @Arg('afterSeq', () => Int, { defaultValue: 0 }) afterSeq: number,
    @Arg('limit', () => Int, { defaultValue: DEFAULT_LOG_LIMIT }) limit: number,
    @Ctx() ctx: Context,
  ): Promise<LogChunkFields[]> {
    return logsOf(ctx.deps.pool, execution.id, afterSeq, limit, ctx.deps.config.queryLimits.logPageMaxBytes);
  }

  @FieldResolver(() => String, { nullable: true, description: 'The worker running it, or that ran its last attempt; null while it never started.' })
  async worker(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<string | null> {
    return execution instanceof Execution ? execution.workerId : (await runDetailsOf(ctx.deps.pool, execution.id)).worker;
  }

  @FieldResolver(() => String, { description: 'The image it runs in, as its plan had it when queued.' })
  async image(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<string> {
    return execution instanceof Execution ? execution.plan.image : (await runDetailsOf(ctx.deps.pool, execution.id)).image;
  }

  @FieldResolver(() => Int, { description: 'The seq of the last log line stored so far; 0 when none.' })
  lastSeq(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<number> {
    return lastStoredSeq(ctx.deps.pool, execution.id);
  }

  @FieldResolver(() => LogSearchResultType, {
    description:
      'Lines with seq > afterSeq whose text contains query (case-insensitive), over the whole stored log (Postgres or the archive). ' +
      'One answer searches a bounded window (at most first matches, 250,000 lines): go on from scannedThrough while hasMore.',
  })
  logSearch(
    @Root() execution: ExecutionView,
    @Arg('query') query: string,
    @Arg('afterSeq', () => Int, { defaultValue: 0 }) afterSeq: number,
    @Arg('first', () => Int, { defaultValue: DEFAULT_LOG_SEARCH_MATCHES }) first: number,
    @Ctx() ctx: Context,
  ): Promise<LogSearchResult> {
    return searchLog(ctx.deps.pool, ctx.deps.store, execution.id, { query, afterSeq, first });
  }

  @FieldResolver(() => String, { nullable: true, description: 'Where the archived log can be downloaded; null until archived.' })
  logUrl(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<string | null> {
    return logUrlOf(ctx.deps.store, execution);
  }

  @FieldResolver(() => [ArtifactType])
  artifacts(@Root() execution: ExecutionView, @Ctx() ctx: Context) {
    return artifactsOf(ctx.deps.store, execution);
  }
}
