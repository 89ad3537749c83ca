import { Field, Int, ObjectType } from 'type-graphql';

@ObjectType({ description: 'The caller, as identified by their token.' })
export class User {
  @Field({ description: 'The token subject; owner of every job this user submits.' })
  id!: string;
}

@ObjectType()
export class PageInfo {
  @Field()
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

@ObjectType({ description: 'A problem in a job file. Lines and columns are 1-based.' })
export class Diagnostic {
  @Field(() => Int)
  line!: number;

  @Field(() => Int)
  column!: number;

  @Field({ description: 'e.g. jobs[0].steps[1].run' })
  path!: string;

  @Field()
  message!: string;

  @Field({ description: 'error or warning' })
  severity!: string;
}

@ObjectType()
export class ValidationResult {
  @Field()
  valid!: boolean;

  @Field(() => [Diagnostic])
  diagnostics!: Diagnostic[];
}
