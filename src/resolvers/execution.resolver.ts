import { Arg, Ctx, FieldResolver, Float, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Execution, Job, LogChunk } from '../entities/index.js';
import { stepsOfSnapshot } from '../events/executionSnapshot.js';
import { cancelExecution } from '../services/cancelExecution.js';
import { artifactsOf, logUrlOf } from '../services/executionFiles.js';
import { DEFAULT_LOG_LIMIT, listExecutions, logsOf, stepsOfExecutions, type ExecutionView, type StepView } from '../services/executionQueries.js';
import { findExecution } from '../services/findOwned.js';
import { Batcher, batcherOf } from './batch.js';
import { toConnection } from './connection.js';
import type { Context } from './context.js';
import { ExecutionStatus } from './types/enums.js';
import { ArtifactType, ExecutionConnection, ExecutionType, LogChunkType, StepType } from './types/execution.js';
import { JobType } from './types/job.js';

const STEPS = Symbol('steps');

/** The request's batcher of `steps`: one statement for all the executions of a list. */
function stepsBatcher(ctx: Context): Batcher<string, StepView[]> {
  return batcherOf(ctx, STEPS, () => new Batcher((ids) => stepsOfExecutions(ctx.deps.pool, ids), () => []));
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
  ) {
    return toConnection(await listExecutions(ctx.deps.pool, ctx.principal.sub, { jobId, status, first, after }));
  }

  @Mutation(() => ExecutionType, { description: 'Cancels a queued or running execution; a finished one is returned unchanged.' })
  cancelExecution(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Execution> {
    return cancelExecution(ctx.deps, ctx.principal.sub, id);
  }

  @FieldResolver(() => JobType)
  async job(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<Job> {
    return ctx.em.findOneOrFail(Job, { id: execution.job.id });
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
  async steps(@Root() execution: ExecutionView, @Ctx() ctx: Context): Promise<StepView[]> {
    // An executionUpdated event carries its steps as of that event (only entities are snapshots).
    const snapshot = execution instanceof Execution ? stepsOfSnapshot(execution) : undefined;
    return snapshot ?? stepsBatcher(ctx).load(execution.id);
  }

  @FieldResolver(() => [LogChunkType], { description: 'Lines with seq > afterSeq, in order; limit at most 10000.' })
  logs(
    @Root() execution: ExecutionView,
    @Arg('afterSeq', () => Int, { defaultValue: 0 }) afterSeq: number,
    @Arg('limit', () => Int, { defaultValue: DEFAULT_LOG_LIMIT }) limit: number,
    @Ctx() ctx: Context,
  ): Promise<LogChunk[]> {
    return logsOf(ctx.em, execution.id, afterSeq, limit);
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
