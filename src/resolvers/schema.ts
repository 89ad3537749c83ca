import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { DeliveryResolver, JobDeliveriesResolver } from './delivery.resolver.js';
import { ExecutionResolver } from './execution.resolver.js';
import { JobBoardResolver } from './jobBoard.resolver.js';
import { JobResolver } from './job.resolver.js';
import { SecretResolver } from './secret.resolver.js';
import { SubscriptionResolver } from './subscription.resolver.js';
import { TickResolver } from './tick.resolver.js';
import { DateTimeScalar } from './types/scalars.js';
import { UserResolver } from './user.resolver.js';

/**
 * type-graphql insists on a PubSub once a resolver has subscriptions, but Kiln's subscriptions
 * bring their own `subscribe` (src/events: Postgres LISTEN/NOTIFY), so nothing ever uses it.
 */
const NO_PUBSUB = {
  publish: () => {
    throw new Error('Kiln publishes events through Postgres NOTIFY, not a PubSub');
  },
  subscribe: () => {
    throw new Error('Kiln subscriptions subscribe through src/events, not a PubSub');
  },
};

/** Builds Kiln's GraphQL schema from the resolver classes. */
export async function buildKilnSchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [JobResolver, JobBoardResolver, JobDeliveriesResolver, DeliveryResolver, ExecutionResolver, TickResolver, UserResolver, SubscriptionResolver, SecretResolver],
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
    pubSub: NO_PUBSUB,
    validate: false,
  });
}

/** The SDL committed as schema.graphql: sorted, so the file only changes when the schema does. */
export async function printKilnSchema(): Promise<string> {
  return printSchema(lexicographicSortSchema(await buildKilnSchema())) + '\n';
}
