import type { GraphQLSchema } from 'graphql';
import { Arg, ID, Int, Resolver, Root, Subscription, type SubscribeResolverData } from 'type-graphql';
import type { Execution } from '../entities/index.js';
import { followExecutionUpdates } from '../events/followExecutions.js';
import { followJobUpdates, type JobUpdate } from '../events/followJobs.js';
import { followExecutionLogs } from '../events/followLogs.js';
import type { EventHub } from '../events/EventHub.js';
import type { LogChunkFields } from '../entities/LogChunk.js';
import type { Context } from './context.js';
import { ExecutionType, LogChunkType } from './types/execution.js';
import { JobEventType } from './types/jobEvent.js';

type SubscribeData<Args> = SubscribeResolverData<unknown, Args, Context>;

/** Subscriptions run only over graphql-ws, whose context carries the process's event hub. */
function hubOf(ctx: Context): EventHub {
  if (!ctx.events) throw new Error('subscriptions are served over graphql-ws only');
  return ctx.events;
}

@Resolver()
export class SubscriptionResolver {
  @Subscription(() => ExecutionType, {
    description:
      "Each change of the status of the caller's executions (or of a step's status) after the subscription starts; " +
      'no replay of the past. Narrowed by jobId or executionId; with executionId it completes once that execution ' +
      'has finished and no step is pending or running (at once if that is already so).',
    subscribe: ({ args, context }: SubscribeData<{ jobId?: string | null; executionId?: string | null }>) =>
      followExecutionUpdates(context.em, hubOf(context), context.principal.sub, args),
  })
  executionUpdated(
    @Root() execution: Execution,
    @Arg('jobId', () => ID, { nullable: true }) _jobId: string | null,
    @Arg('executionId', () => ID, { nullable: true }) _executionId: string | null,
  ): Execution {
    return execution;
  }

  @Subscription(() => JobEventType, {
    description:
      "Each of the caller's jobs created or replaced by a submit, paused, resumed or deleted after the subscription " +
      'starts, in commit order; no replay of the past, and nothing for runs (see executionUpdated). Narrowed by jobId, ' +
      'it completes after that job is deleted. Ends with an error when events may have been lost: subscribe again and re-read.',
    subscribe: ({ args, context }: SubscribeData<{ jobId?: string | null }>) =>
      followJobUpdates(context.em, hubOf(context), context.principal.sub, args.jobId ?? null),
  })
  jobUpdated(@Root() event: JobUpdate, @Arg('jobId', () => ID, { nullable: true }) _jobId: string | null): JobUpdate {
    return event;
  }

  @Subscription(() => LogChunkType, {
    description:
      'Every log line with seq > afterSeq (default 0), in order, once: what is stored first (Postgres, or the archive ' +
      'once the chunks are pruned), then live. Completes after the last line of a finished execution.',
    subscribe: ({ args, context }: SubscribeData<{ executionId: string; afterSeq?: number | null }>) =>
      followExecutionLogs(context.em, hubOf(context), context.principal.sub, args.executionId, args.afterSeq),
  })
  executionLogs(
    @Root() line: LogChunkFields,
    @Arg('executionId', () => ID) _executionId: string,
    @Arg('afterSeq', () => Int, { nullable: true }) _afterSeq: number | null,
  ): LogChunkFields {
    return line;
  }
}

/**
 * Each subscription field above resolves an event to itself. type-graphql would still run its
 * argument conversion for every event (every log line of every subscriber); resolving the
 * payload directly does the same thing for a fraction of the cost.
 */
export function resolveSubscriptionPayloadsDirectly(schema: GraphQLSchema): void {
  for (const field of Object.values(schema.getSubscriptionType()?.getFields() ?? {})) {
    field.resolve = (payload: unknown) => payload;
  }
}
