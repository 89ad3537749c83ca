import { Arg, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { deleteSecret, listSecrets, setSecret, type SecretInfo } from '../services/secrets.js';
import type { Context } from './context.js';
import { SecretType } from './types/secret.js';

@Resolver(() => SecretType)
export class SecretResolver {
  @Query(() => [SecretType], { description: "The caller's secrets by name; values are never returned." })
  secrets(@Ctx() ctx: Context): Promise<SecretInfo[]> {
    return listSecrets(ctx.deps, ctx.principal.sub);
  }

  @Mutation(() => SecretType, {
    description: 'Stores or replaces a secret. Jobs that list it in `secrets` get it as an environment variable, masked in their logs.',
  })
  setSecret(@Arg('name') name: string, @Arg('value') value: string, @Ctx() ctx: Context): Promise<SecretInfo> {
    return setSecret(ctx.deps, ctx.principal.sub, name, value);
  }

  @Mutation(() => Boolean, { description: 'Removes a secret; false when there was none by that name.' })
  deleteSecret(@Arg('name') name: string, @Ctx() ctx: Context): Promise<boolean> {
    return deleteSecret(ctx.deps, ctx.principal.sub, name);
  }
}
