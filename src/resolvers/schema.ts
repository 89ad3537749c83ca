import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { ExecutionResolver } from './execution.resolver.js';
import { JobResolver } from './job.resolver.js';
import { DateTimeScalar } from './types/scalars.js';
import { UserResolver } from './user.resolver.js';

/** Builds Kiln's GraphQL schema from the resolver classes. */
export async function buildKilnSchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [JobResolver, ExecutionResolver, UserResolver],
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
    validate: false,
  });
}

/** The SDL committed as schema.graphql: sorted, so the file only changes when the schema does. */
export async function printKilnSchema(): Promise<string> {
  return printSchema(lexicographicSortSchema(await buildKilnSchema())) + '\n';
}
