import { Ctx, FieldResolver, Resolver, Root } from 'type-graphql';
import { Execution, Tick } from '../entities/index.js';
import type { Context } from './context.js';
import { ExecutionType } from './types/execution.js';
import { TickType } from './types/tick.js';

@Resolver(() => TickType)
export class TickResolver {
  @FieldResolver(() => ExecutionType, { nullable: true, description: 'The execution a FIRED tick queued.' })
  execution(@Root() tick: Tick, @Ctx() ctx: Context): Promise<Execution | null> | null {
    return tick.executionId === null ? null : ctx.em.findOne(Execution, { id: tick.executionId });
  }
}
