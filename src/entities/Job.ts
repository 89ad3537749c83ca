import { OptionalProps } from '@mikro-orm/core';
import { Entity, PrimaryKey, Property, Unique } from '@mikro-orm/decorators/legacy';
import { randomUUID } from 'node:crypto';
import type { JobSpec } from '../jobfile/types.js';

/** A job as its owner submitted it; one row per (owner, name). */
@Entity({ tableName: 'jobs' })
@Unique({ name: 'jobs_owner_name_unique', properties: ['owner', 'name'] })
export class Job {
  [OptionalProps]?: 'id' | 'paused' | 'nextRunAt' | 'executionCount' | 'createdAt' | 'updatedAt' | 'scheduleAnchor';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  /** `sub` of the token that submitted it. */
  @Property({ type: 'text' })
  owner!: string;

  @Property({ type: 'text' })
  name!: string;

  /** The job's own YAML, as written. */
  @Property({ type: 'text' })
  spec!: string;

  /** The validated, normalized job (jobfile/types.ts JobSpec). */
  @Property({ type: 'json' })
  definition!: JobSpec;

  @Property({ type: 'text', nullable: true })
  schedule!: string | null;

  @Property({ type: 'text' })
  timezone!: string;

  @Property({ type: 'boolean' })
  runOnce!: boolean;

  /** 0..10, higher runs first. */
  @Property({ type: 'smallint' })
  priority!: number;

  @Property({ type: 'boolean', default: false })
  paused: boolean = false;

  /**
   * The scheduler's cursor: the next fire time not yet recorded in the tick ledger. It keeps
   * moving while the job is paused (those fire times are recorded PAUSED); the API shows null
   * then. Null for one-off jobs and run_once jobs that have had their fire time.
   */
  @Property({ type: 'timestamptz', nullable: true })
  nextRunAt: Date | null = null;

  /** `@every` intervals count from here: the job's creation or its last schedule change. */
  @Property({ type: 'timestamptz' })
  scheduleAnchor: Date = new Date();

  /** Executions created so far; the next one gets `executionCount + 1` as its number. */
  @Property({ type: 'integer', default: 0 })
  executionCount: number = 0;

  @Property({ type: 'timestamptz' })
  createdAt: Date = new Date();

  @Property({ type: 'timestamptz', onUpdate: () => new Date() })
  updatedAt: Date = new Date();
}
