import { OptionalProps } from '@mikro-orm/core';
import { Entity, Enum, Index, ManyToOne, PrimaryKey, Property, Unique } from '@mikro-orm/decorators/legacy';
import { randomUUID } from 'node:crypto';
import type { ExecutionPlan } from '../jobfile/types.js';
import { ExecutionStatus, ExecutionTrigger } from './enums.js';
import { Job } from './Job.js';

/** One stored artifact of an execution. */
export interface ArtifactRecord {
  path: string;
  size: number;
  key: string;
}

/** One run of a job. `number` counts from 1 per job; `attempt` from 1 per execution. */
@Entity({ tableName: 'executions' })
@Unique({ name: 'executions_job_number_unique', properties: ['job', 'number'] })
@Index({ name: 'executions_owner_created_index', expression: 'create index "executions_owner_created_index" on "executions" ("owner", "created_at" desc, "id" desc)' })
@Index({ name: 'executions_job_created_index', expression: 'create index "executions_job_created_index" on "executions" ("job_id", "created_at" desc, "id" desc)' })
export class Execution {
  [OptionalProps]?:
    | 'id' | 'status' | 'attempt' | 'scheduledFor' | 'queuedAt' | 'startedAt' | 'finishedAt' | 'exitCode'
    | 'error' | 'logKey' | 'lastSeq' | 'workerId' | 'cancelRequestedAt' | 'artifacts' | 'createdAt' | 'retryOf'
    | 'leaseExpiresAt' | 'retryNumber';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Job, { deleteRule: 'cascade' })
  job!: Job;

  /** Copied from the job so owner-scoped lookups need no join. */
  @Property({ type: 'text' })
  owner!: string;

  @Property({ type: 'integer' })
  number!: number;

  @Enum({ items: () => ExecutionStatus, nativeEnumName: undefined })
  status: ExecutionStatus = ExecutionStatus.QUEUED;

  @Enum({ items: () => ExecutionTrigger })
  trigger!: ExecutionTrigger;

  @Property({ type: 'integer', default: 1 })
  attempt: number = 1;

  /** 0..10 as the job had it when this execution was queued. */
  @Property({ type: 'smallint' })
  priority!: number;

  /** The plan as it was when queued: editing the job does not change a run in flight. */
  @Property({ type: 'json' })
  plan!: ExecutionPlan;

  /** The fire time this execution answers (SCHEDULE), else null. */
  @Property({ type: 'timestamptz', nullable: true })
  scheduledFor: Date | null = null;

  @Property({ type: 'timestamptz' })
  queuedAt: Date = new Date();

  @Property({ type: 'timestamptz', nullable: true })
  startedAt: Date | null = null;

  @Property({ type: 'timestamptz', nullable: true })
  finishedAt: Date | null = null;

  @Property({ type: 'integer', nullable: true })
  exitCode: number | null = null;

  @Property({ type: 'text', nullable: true })
  error: string | null = null;

  /** Key of the archived log in the ArtifactStore, once archived. */
  @Property({ type: 'text', nullable: true })
  logKey: string | null = null;

  /** Highest log chunk seq written so far (0 = none); chunks are gapless from 1. */
  @Property({ type: 'integer', default: 0 })
  lastSeq: number = 0;

  @Property({ type: 'text', nullable: true })
  workerId: string | null = null;

  @Property({ type: 'timestamptz', nullable: true })
  cancelRequestedAt: Date | null = null;

  @Property({ type: 'json', default: '[]' })
  artifacts: ArtifactRecord[] = [];

  /** For RETRY executions: the first execution of the chain. */
  @Property({ type: 'uuid', nullable: true })
  retryOf: string | null = null;

  /** 0 for a first run, n for the n-th retry of `retryOf`. */
  @Property({ type: 'integer', default: 0 })
  retryNumber: number = 0;

  /**
   * While RUNNING: until when the worker's claim holds. The worker renews it by heartbeat; once
   * it passes, the execution is re-queued as its next attempt and the old worker is fenced.
   */
  @Property({ type: 'timestamptz', nullable: true })
  leaseExpiresAt: Date | null = null;

  @Property({ type: 'timestamptz' })
  createdAt: Date = new Date();
}
