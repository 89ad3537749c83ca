import { OptionalProps } from '@mikro-orm/core';
import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';

/**
 * One stored secret of one owner. `value` is the sealed (encrypted and authenticated) value, as
 * SecretBox.seal makes it; the plain value exists only in the worker while a build runs.
 */
@Entity({ tableName: 'secrets' })
export class Secret {
  [OptionalProps]?: 'createdAt' | 'updatedAt';

  @PrimaryKey({ type: 'text' })
  owner!: string;

  /** An environment variable name: letters, digits and `_`, not starting with a digit. */
  @PrimaryKey({ type: 'text' })
  name!: string;

  @Property({ type: 'text', lazy: true })
  value!: string;

  @Property({ type: 'timestamptz' })
  createdAt: Date = new Date();

  @Property({ type: 'timestamptz' })
  updatedAt: Date = new Date();
}
