import { Arg, Ctx, FieldResolver, Int, Resolver, Root } from 'type-graphql';
import { Execution, type Job } from '../entities/index.js';
import { listDeliveries, type DeliveryView } from '../services/deliveries.js';
import { toConnection } from './connection.js';
import type { Context } from './context.js';
import { DeliveryConnection, DeliveryType } from './types/delivery.js';
import { ExecutionType } from './types/execution.js';
import { JobType } from './types/job.js';

@Resolver(() => JobType)
export class JobDeliveriesResolver {
  @FieldResolver(() => DeliveryConnection, { description: "The job's notification deliveries (docs/design.md#notifications), newest first." })
  async deliveries(
    @Root() job: Job,
    @Arg('first', () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return toConnection(await listDeliveries(ctx.deps.pool, job.id, first, after));
  }
}

@Resolver(() => DeliveryType)
export class DeliveryResolver {
  @FieldResolver(() => ExecutionType, { nullable: true, description: 'The execution the event is about; null for missed.' })
  execution(@Root() delivery: DeliveryView, @Ctx() ctx: Context): Promise<Execution | null> | null {
    return delivery.executionId === null ? null : ctx.em.findOne(Execution, { id: delivery.executionId });
  }
}
