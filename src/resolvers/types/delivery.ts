import { Field, ID, Int, ObjectType } from 'type-graphql';
import { PageInfo } from './common.js';

@ObjectType('DeliveryAttempt', { description: 'One try of a notification delivery.' })
export class DeliveryAttemptType {
  @Field(() => Int, { description: 'Counts from 1.' })
  attempt!: number;

  @Field(() => Date)
  startedAt!: Date;

  @Field(() => Int)
  durationMs!: number;

  @Field(() => Int, { nullable: true, description: "The receiver's HTTP status; null when none answered." })
  responseCode!: number | null;

  @Field(() => String, { nullable: true, description: 'Why it failed (secrets masked); null when it was delivered.' })
  error!: string | null;
}

@ObjectType('Delivery', { description: 'One notification of one event on one channel, and how its delivery went.' })
export class DeliveryType {
  @Field(() => ID, { description: 'The delivery id: the X-Kiln-Delivery header, the same on every try.' })
  id!: string;

  @Field({ description: 'failed | first_failure | fixed | timed_out | missed | running_longer: the most specific event the rule matched.' })
  event!: string;

  @Field({ description: 'webhook | slack | email' })
  channel!: string;

  @Field({ description: 'Where it goes: the URL (a Slack URL kept in a secret shows as the secret), or the addresses.' })
  target!: string;

  @Field({ description: 'PENDING | DELIVERED | FAILED' })
  status!: string;

  @Field(() => Int, { description: 'Tries so far.' })
  attempts!: number;

  @Field(() => Int, { nullable: true, description: "The last try's HTTP status." })
  responseCode!: number | null;

  @Field(() => String, { nullable: true })
  lastError!: string | null;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  deliveredAt!: Date | null;

  @Field(() => Int, { description: 'missed: the fire times grouped in this delivery; 1 otherwise.' })
  count!: number;

  @Field(() => [DeliveryAttemptType], { description: 'Every recorded try, oldest first.' })
  tries!: DeliveryAttemptType[];
}

@ObjectType()
export class DeliveryEdge {
  @Field()
  cursor!: string;

  @Field(() => DeliveryType)
  node!: DeliveryType;
}

@ObjectType()
export class DeliveryConnection {
  @Field(() => [DeliveryEdge])
  edges!: DeliveryEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
