import { Field, ID, Int, ObjectType } from 'type-graphql';
import { PageInfo } from './common.js';

@ObjectType('Job', { description: 'A job as its owner submitted it.' })
export class JobType {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field(() => String, { nullable: true, description: 'null for a one-off job' })
  schedule!: string | null;

  @Field()
  timezone!: string;

  @Field()
  runOnce!: boolean;

  @Field(() => Int, { description: '0..10, higher runs first' })
  priority!: number;

  @Field()
  paused!: boolean;

  @Field({ description: "The job's YAML, as submitted." })
  spec!: string;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date)
  updatedAt!: Date;
}

@ObjectType()
export class JobEdge {
  @Field()
  cursor!: string;

  @Field(() => JobType)
  node!: JobType;
}

@ObjectType()
export class JobConnection {
  @Field(() => [JobEdge])
  edges!: JobEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@ObjectType()
export class SubmitJobPayload {
  @Field(() => [JobType], { description: "The submitted jobs, in the file's order." })
  jobs!: JobType[];
}
