import { Field, ObjectType } from 'type-graphql';

@ObjectType('FireTime', { description: "A coming fire time of a job, as its time zone reads it." })
export class FireTimeType {
  @Field(() => Date)
  at!: Date;

  @Field({ description: "The wall-clock time in the job's time zone, without an offset, e.g. 2027-03-28T03:00:00." })
  wallClock!: string;

  @Field({ description: 'The offset from UTC at that instant, e.g. +02:00; a change between two fire times is a daylight-saving change.' })
  utcOffset!: string;
}
