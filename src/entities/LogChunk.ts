import { Entity, Enum, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { LogStream } from './enums.js';

/**
 * One line of an execution's log. `seq` is gapless from 1 per execution: the pair
 * (execution, seq) is the primary key, so a duplicate write is refused, never stored twice.
 * Written in batches by the log pipeline with plain SQL; read through the ORM.
 */
@Entity({ tableName: 'log_chunks' })
export class LogChunk {
  @PrimaryKey({ type: 'uuid' })
  executionId!: string;

  @PrimaryKey({ type: 'integer' })
  seq!: number;

  @Enum({ items: () => LogStream })
  stream!: LogStream;

  /** 0-based step index; null for SYSTEM lines outside a step. */
  @Property({ type: 'integer', nullable: true })
  step!: number | null;

  @Property({ type: 'text' })
  text!: string;

  @Property({ type: 'timestamptz' })
  at!: Date;
}

/**
 * A LogChunk without its execution id: the shape the log pipeline (writer, tails, archive,
 * subscriptions) passes around, since it works one execution at a time. The same fields as the
 * GraphQL fragment `LogChunkFields`. Lines that arrived together may share one `at` Date: it is
 * never mutated.
 */
export type LogChunkFields = Pick<LogChunk, 'seq' | 'stream' | 'step' | 'text' | 'at'>;
