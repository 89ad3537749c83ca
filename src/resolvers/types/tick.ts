import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { TickOutcome } from '../../entities/enums.js';
import { PageInfo } from './common.js';

registerEnumType(TickOutcome, { name: 'TickOutcome', description: 'What became of one scheduled fire time.' });

@ObjectType('Tick', { description: 'One fire time of a job and what became of it.' })
export class TickType {
  @Field(() => Date)
  fireTime!: Date;

  @Field(() => TickOutcome)
  outcome!: TickOutcome;

  @Field({ description: 'Fired late, as the catch-up of fire times missed while no scheduler ran.' })
  catchUp!: boolean;
}

@ObjectType()
export class TickEdge {
  @Field()
  cursor!: string;

  @Field(() => TickType)
  node!: TickType;
}

@ObjectType()
export class TickConnection {
  @Field(() => [TickEdge])
  edges!: TickEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
