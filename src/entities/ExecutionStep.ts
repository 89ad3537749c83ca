import { OptionalProps } from '@mikro-orm/core';
import { Entity, Enum, ManyToOne, PrimaryKey, Property, Unique } from '@mikro-orm/decorators/legacy';
import { randomUUID } from 'node:crypto';
import { StepStatus } from './enums.js';
import { Execution } from './Execution.js';

/** One step of one execution; `index` is 0-based in the job's order. */
@Entity({ tableName: 'execution_steps' })
@Unique({ name: 'execution_steps_execution_index_unique', properties: ['execution', 'index'] })
export class ExecutionStep {
  [OptionalProps]?: 'id' | 'status' | 'exitCode' | 'startedAt' | 'finishedAt';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Execution, { deleteRule: 'cascade' })
  execution!: Execution;

  @Property({ type: 'integer' })
  index!: number;

  @Property({ type: 'text' })
  name!: string;

  @Enum({ items: () => StepStatus })
  status: StepStatus = StepStatus.PENDING;

  @Property({ type: 'integer', nullable: true })
  exitCode: number | null = null;

  @Property({ type: 'timestamptz', nullable: true })
  startedAt: Date | null = null;

  @Property({ type: 'timestamptz', nullable: true })
  finishedAt: Date | null = null;
}
