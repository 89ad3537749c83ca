import { Field, ObjectType } from 'type-graphql';

@ObjectType('Secret', { description: "One of the caller's secrets. Its value is never readable back." })
export class SecretType {
  @Field({ description: 'The environment variable the value is given to builds as.' })
  name!: string;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date)
  updatedAt!: Date;
}
