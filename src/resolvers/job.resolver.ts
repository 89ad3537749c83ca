import type { GraphQLResolveInfo } from 'graphql';
import { Arg, Ctx, FieldResolver, ID, Info, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Execution, Job } from '../entities/index.js';
import { listExecutions } from '../services/executionQueries.js';
import { findJob } from '../services/findOwned.js';
import { deleteJob, pauseJob, resumeJob } from '../services/jobLifecycle.js';
import { lastExecutionOf, listJobs, listTicks, nextFiresOf, nextRunsOf, type FireTime } from '../services/jobQueries.js';
import { visibleNextRunAt } from '../services/schedules.js';
import { TickConnection } from './types/tick.js';
import { FireTimeType } from './types/fireTime.js';
import { queuedBy, submitJobs } from '../services/submitJobs.js';
import { triggerJob } from '../services/triggerJob.js';
import { toConnection } from './connection.js';
import { selects } from './selection.js';
import type { Context } from './context.js';
import { ExecutionStatus } from './types/enums.js';
import { ExecutionConnection, ExecutionType } from './types/execution.js';
import { JobConnection, JobType, SubmitJobPayload } from './types/job.js';

@Resolver(() => JobType)
export class JobResolver {
  @Query(() => JobType, { nullable: true, description: "One of the caller's jobs; null for an unknown id or another owner's." })
  job(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Job | null> {
    return findJob(ctx.em, ctx.principal.sub, id);
  }

  @Query(() => JobConnection, { description: "The caller's jobs, ordered by name." })
  async jobs(
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return toConnection(await listJobs(ctx.em, ctx.principal.sub, first, after));
  }

  @Mutation(() => SubmitJobPayload, { description: 'Creates or updates every job of a YAML file; one-off jobs are queued at once.' })
  async submitJob(@Arg('spec') spec: string, @Ctx() ctx: Context) {
    return { jobs: await submitJobs(ctx.deps, ctx.principal.sub, spec) };
  }

  @Mutation(() => ExecutionType, { description: 'Runs the job now.' })
  triggerJob(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Execution> {
    return triggerJob(ctx.deps, ctx.principal.sub, id);
  }

  @Mutation(() => JobType)
  pauseJob(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Job> {
    return pauseJob(ctx.deps, ctx.principal.sub, id);
  }

  @Mutation(() => JobType)
  resumeJob(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<Job> {
    return resumeJob(ctx.deps, ctx.principal.sub, id);
  }

  @Mutation(() => Boolean)
  deleteJob(@Arg('id', () => ID) id: string, @Ctx() ctx: Context): Promise<boolean> {
    return deleteJob(ctx.deps, ctx.principal.sub, id);
  }

  @FieldResolver(() => String, { description: 'The image the steps run in (the server default when the job names none).' })
  image(@Root() job: Job, @Ctx() ctx: Context): string {
    return job.definition.image ?? ctx.deps.config.defaultImage;
  }

  @FieldResolver(() => Date, { nullable: true, description: 'null when paused, one-off, or a run_once job that has fired' })
  nextRunAt(@Root() job: Job): Date | null {
    return visibleNextRunAt(job);
  }

  @FieldResolver(() => TickConnection, { description: 'The tick ledger: every fire time since creation with its outcome, newest first.' })
  async ticks(
    @Root() job: Job,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return toConnection(await listTicks(ctx.em, job.id, first, after));
  }

  @FieldResolver(() => [Date], { description: 'The next fire times; empty when paused or one-off.' })
  nextRuns(@Root() job: Job, @Arg('count', () => Int, { nullable: true, defaultValue: 5 }) count: number, @Ctx() ctx: Context): Promise<Date[]> {
    return nextRunsOf(ctx.deps, job, count);
  }

  @FieldResolver(() => [FireTimeType], { description: "The next fire times with their UTC offsets in the job's time zone; empty when paused or one-off." })
  nextFires(@Root() job: Job, @Arg('count', () => Int, { nullable: true, defaultValue: 5 }) count: number, @Ctx() ctx: Context): Promise<FireTime[]> {
    return nextFiresOf(ctx.deps, job, count);
  }

  @FieldResolver(() => ExecutionType, { nullable: true })
  lastExecution(@Root() job: Job, @Ctx() ctx: Context): Promise<Execution | null> {
    // A job a submit just returned: its one-off's execution as the submit queued it.
    const queued = queuedBy(job);
    return queued ? Promise.resolve(queued) : lastExecutionOf(ctx.em, job);
  }

  @FieldResolver(() => ExecutionConnection, { description: 'Newest first.' })
  async executions(
    @Root() job: Job,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('status', () => ExecutionStatus, { nullable: true }) status: ExecutionStatus | null,
    @Ctx() ctx: Context,
    @Info() info: GraphQLResolveInfo,
  ) {
    const withSteps = selects(info, ['edges', 'node', 'steps']);
    return toConnection(await listExecutions(ctx.deps.pool, ctx.principal.sub, { jobId: job.id, status, first, after }, { withSteps }));
  }
}
