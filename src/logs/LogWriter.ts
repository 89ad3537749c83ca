import type pg from 'pg';
import { LogStream } from '../entities/enums.js';

/** One numbered log line, as stored in `log_chunks`. */
export interface LogLine {
  seq: number;
  stream: LogStream;
  step: number | null;
  text: string;
  at: Date;
}

/** Called after each batch is durably stored, in seq order (the seam for live fan-out). */
export type LogFlushListener = (lines: readonly LogLine[]) => void;

/**
 * Numbers an execution's log lines and stores them in batches.
 *
 * Invariant: seqs are assigned synchronously in `append` order, from `lastSeq + 1` without gaps,
 * and batches are written one at a time in order, each batch together with `executions.last_seq`,
 * so `last_seq` always equals the highest stored seq.
 */
export class LogWriter {
  private seq: number;
  private pending: LogLine[] = [];
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly executionId: string,
    lastSeq: number,
    private readonly opts: { flushMs?: number; maxBatch?: number; onFlush?: LogFlushListener } = {},
  ) {
    this.seq = lastSeq;
  }

  /** Highest seq assigned so far. */
  get lastSeq(): number {
    return this.seq;
  }

  append(stream: LogStream, step: number | null, text: string, at: Date = new Date()): void {
    // Postgres text cannot hold NUL; a build's binary garbage must not fail the run.
    const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
    this.pending.push({ seq: ++this.seq, stream, step, text: clean, at });
    if (this.pending.length >= (this.opts.maxBatch ?? 500)) {
      void this.flush();
    } else if (this.timer === null) {
      this.timer = setTimeout(() => void this.flush(), this.opts.flushMs ?? 100);
    }
  }

  system(text: string, step: number | null = null): void {
    this.append(LogStream.SYSTEM, step, text);
  }

  /** Writes everything appended so far; rejects if any batch could not be stored. */
  flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) {
      this.chain = this.chain.then(() => this.write(batch)).catch((err: Error) => {
        this.failure ??= err;
      });
    }
    return this.chain.then(() => {
      if (this.failure) throw this.failure;
    });
  }

  private async write(batch: LogLine[]): Promise<void> {
    if (this.failure) return;
    await this.pool.query(
      `with inserted as (
         insert into log_chunks (execution_id, seq, stream, step, text, at)
         select $1, s, st, sp, tx, a
           from unnest($2::int[], $3::text[], $4::int[], $5::text[], $6::timestamptz[]) as u(s, st, sp, tx, a)
         returning seq
       )
       update executions set last_seq = (select max(seq) from inserted) where id = $1`,
      [
        this.executionId,
        batch.map((l) => l.seq),
        batch.map((l) => l.stream),
        batch.map((l) => l.step),
        batch.map((l) => l.text),
        batch.map((l) => l.at.toISOString()),
      ],
    );
    this.opts.onFlush?.(batch);
  }
}
