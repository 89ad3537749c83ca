import { Arg, Ctx, Int, Query, Resolver } from 'type-graphql';
import { previewSchedule } from '../services/schedules.js';
import { repositoryPolicyOf, validateJobFile } from '../services/submitJobs.js';
import type { Context } from './context.js';
import { User, ValidationResult } from './types/common.js';

@Resolver()
export class UserResolver {
  @Query(() => User)
  me(@Ctx() ctx: Context): User {
    return { id: ctx.principal.sub };
  }

  @Query(() => ValidationResult, { description: 'Checks a job file without storing anything.' })
  async validateJobSpec(@Arg('spec') spec: string, @Ctx() ctx: Context): Promise<ValidationResult> {
    const result = await validateJobFile(ctx.deps, ctx.principal.sub, spec, repositoryPolicyOf(ctx.deps.config));
    return result.ok ? { valid: true, diagnostics: result.warnings } : { valid: false, diagnostics: result.diagnostics };
  }

  @Query(() => [Date], { description: 'The next fire times of a schedule, computed as the scheduler would.' })
  schedulePreview(
    @Arg('schedule') schedule: string,
    @Arg('timezone', () => String, { nullable: true }) timezone: string | null,
    @Arg('count', () => Int, { nullable: true }) count: number | null,
    @Ctx() ctx: Context,
  ): Promise<Date[]> {
    return previewSchedule(ctx.deps, ctx.principal.sub, schedule, timezone, count);
  }
}
