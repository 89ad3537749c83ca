import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { PageInfo } from './common.js';
import { ExecutionStatus, ExecutionTrigger, LogStream, StepStatus } from './enums.js';

@ObjectType('Execution', { description: 'One run of a job.' })
export class ExecutionType {
  @Field(() => ID)
  id!: string;

  @Field(() => Int, { description: 'Counts from 1 per job.' })
  number!: number;

  @Field(() => ExecutionStatus)
  status!: ExecutionStatus;

  @Field(() => ExecutionTrigger)
  trigger!: ExecutionTrigger;

  @Field(() => Int, { description: 'Counts from 1; a run whose worker died is retried as the next attempt.' })
  attempt!: number;

  @Field(() => Date, { nullable: true })
  scheduledFor!: Date | null;

  @Field(() => Date)
  queuedAt!: Date;

  @Field(() => Date, { nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  finishedAt!: Date | null;

  @Field(() => Int, { nullable: true })
  exitCode!: number | null;

  @Field(() => String, { nullable: true })
  error!: string | null;
}

@ObjectType('Step')
export class StepType {
  @Field(() => Int, { description: '0-based' })
  index!: number;

  @Field()
  name!: string;

  @Field(() => StepStatus)
  status!: StepStatus;

  @Field(() => Int, { nullable: true })
  exitCode!: number | null;

  @Field(() => Date, { nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  finishedAt!: Date | null;
}

@ObjectType('LogChunk', { description: 'One line of a log; seq is gapless from 1 per execution.' })
export class LogChunkType {
  @Field(() => Int)
  seq!: number;

  @Field(() => LogStream)
  stream!: LogStream;

  @Field(() => Int, { nullable: true, description: '0-based step index; null for SYSTEM lines outside a step' })
  step!: number | null;

  @Field()
  text!: string;

  @Field(() => Date)
  at!: Date;
}

@ObjectType('Artifact')
export class ArtifactType {
  @Field()
  path!: string;

  @Field(() => Float)
  size!: number;

  @Field(() => String, { nullable: true })
  url!: string | null;
}

@ObjectType()
export class ExecutionEdge {
  @Field()
  cursor!: string;

  @Field(() => ExecutionType)
  node!: ExecutionType;
}

@ObjectType()
export class ExecutionConnection {
  @Field(() => [ExecutionEdge])
  edges!: ExecutionEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@ObjectType('LogMatch', { description: 'A log line that contains the text searched for.' })
export class LogMatchType {
  @Field(() => Int)
  seq!: number;

  @Field(() => Int, { nullable: true, description: '0-based step index; null for SYSTEM lines outside a step' })
  step!: number | null;
}

@ObjectType('LogSearchResult', { description: 'One window of a search over the whole stored log.' })
export class LogSearchResultType {
  @Field(() => [LogMatchType], { description: 'In seq order.' })
  matches!: LogMatchType[];

  @Field(() => Int, { description: 'Every line up to this seq was searched: search again with afterSeq = scannedThrough for more.' })
  scannedThrough!: number;

  @Field({ description: 'Lines stored after scannedThrough are not searched yet.' })
  hasMore!: boolean;
}
