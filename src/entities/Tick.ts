import { Entity, Enum, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { TickOutcome } from './enums.js';

/**
 * One fire time of one job, recorded once: (job, fire time) is the primary key, so firing is
 * idempotent whatever crashes. Written in batches by the scheduler with plain SQL.
 */
@Entity({ tableName: 'ticks' })
export class Tick {
  @PrimaryKey({ type: 'uuid' })
  jobId!: string;

  @PrimaryKey({ type: 'timestamptz' })
  fireTime!: Date;

  @Enum({ items: () => TickOutcome })
  outcome!: TickOutcome;

  /** Fired late, as the catch-up of fire times missed while no scheduler ran. */
  @Property({ type: 'boolean', default: false })
  catchUp: boolean = false;

  @Property({ type: 'uuid', nullable: true })
  executionId: string | null = null;

  @Property({ type: 'timestamptz' })
  recordedAt: Date = new Date();
}
