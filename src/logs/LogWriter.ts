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
 * How long the first line after a quiet spell waits for company before it is written. It bounds
 * what a live follower waits for a line (the goal is p99 <= 50 ms from container to subscriber)
 * and the INSERT rate of a chatty build (at most 1000 / IDLE_FLUSH_MS per execution; under load
 * the batches grow instead, see pump()).
 */
const IDLE_FLUSH_MS = 20;
/** Lines per INSERT at most. */
const MAX_BATCH_LINES = 5000;
/** Approximate bytes per INSERT at most (a long line is at most 16 KiB, see LineSplitter). */
const MAX_BATCH_BYTES = 2 * 1024 * 1024;
/** Approximate bytes of lines appended but not yet stored above which `backpressure()` asks the producer to wait. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** What a pending line costs besides its text: the object, its Date, its place in the arrays. */
const LINE_OVERHEAD_BYTES = 160;

/**
 * Numbers an execution's log lines and stores them in batches.
 *
 * Invariants: seqs are assigned synchronously in `append` order, from `lastSeq + 1` without gaps,
 * and batches are written one at a time in order, each batch together with `executions.last_seq`,
 * so `last_seq` always equals the highest stored seq. While one batch is being written the next
 * accumulates, so a fast producer gets big batches and a slow one low latency; a producer that
 * honours `backpressure()` keeps the unwritten lines under about HIGH_WATER_BYTES of memory.
 */
export class LogWriter {
  private seq: number;
  private pending: LogLine[] = [];
  private writing: Promise<void> | null = null;
  /** Approximate memory of lines appended and not yet written (pending and in flight). */
  private unwritten = 0;
  private drained: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly executionId: string,
    lastSeq: number,
    private readonly opts: {
      flushMs?: number;
      maxBatch?: number;
      onFlush?: LogFlushListener;
      /** Write only while this claim holds (attempt fencing); without it, always write. */
      fence?: { attempt: number; workerId: string };
      /** Applied to SYSTEM lines (Kiln's own messages): the build's output is masked upstream, as bytes. */
      mask?: (text: string) => string;
      /** Told the UTF-8 bytes of each batch actually stored (not of one fenced off): metrics. */
      onStored?: (bytes: number) => void;
    } = {},
  ) {
    this.seq = lastSeq;
  }

  /** Highest seq assigned so far. */
  get lastSeq(): number {
    return this.seq;
  }

  append(stream: LogStream, step: number | null, text: string, at: Date = new Date()): void {
    if (this.closed) return; // the run is over: nothing more of it is written
    // Postgres text cannot hold NUL; a build's binary garbage must not fail the run.
    const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
    this.pending.push({ seq: ++this.seq, stream, step, text: clean, at });
    this.unwritten += clean.length + LINE_OVERHEAD_BYTES;
    if (this.pending.length >= (this.opts.maxBatch ?? MAX_BATCH_LINES)) {
      this.pump();
    } else if (this.timer === null && this.writing === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, this.opts.flushMs ?? IDLE_FLUSH_MS);
    }
  }

  system(text: string, step: number | null = null): void {
    this.append(LogStream.SYSTEM, step, this.opts.mask ? this.opts.mask(text) : text);
  }

  /**
   * Undefined while the unwritten lines are few; otherwise a promise that resolves once they are
   * down to half the high-water mark. Producers await it before reading more output.
   */
  backpressure(): Promise<void> | undefined {
    if (this.unwritten <= HIGH_WATER_BYTES || this.failure) return undefined;
    return new Promise((resolve) => this.drained.push(resolve));
  }

  /** Writes everything appended so far; rejects if any batch could not be stored. */
  async flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.pending.length > 0 || this.writing !== null) {
      this.pump();
      await this.writing;
    }
    if (this.failure) throw this.failure;
  }

  /**
   * Stops the writer for good: its timer is cancelled, lines not written yet are dropped, later
   * appends are ignored and no batch starts any more. Resolves once a batch in flight has settled
   * (call `flush` first to keep what was appended). Idempotent.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    for (const line of this.pending.splice(0)) this.unwritten -= line.text.length + LINE_OVERHEAD_BYTES;
    for (const resolve of this.drained.splice(0)) resolve();
    await this.writing;
  }

  /** Starts writing the next batch unless one is in flight; the batch's end starts the next. */
  private pump(): void {
    if (this.closed || this.writing !== null || this.pending.length === 0) return;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const maxLines = this.opts.maxBatch ?? MAX_BATCH_LINES;
    let count = 0;
    let chars = 0;
    while (count < this.pending.length && count < maxLines && (count === 0 || chars < MAX_BATCH_BYTES)) {
      chars += this.pending[count]!.text.length + LINE_OVERHEAD_BYTES;
      count++;
    }
    const batch = this.pending.splice(0, count);
    this.writing = this.write(batch)
      .catch((err: Error) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.writing = null;
        this.unwritten -= chars;
        if (this.unwritten <= HIGH_WATER_BYTES / 2 || this.failure) for (const resolve of this.drained.splice(0)) resolve();
        // What accumulated meanwhile goes at once: the batch size adapts to the producer's pace.
        this.pump();
      });
  }

  private async write(batch: LogLine[]): Promise<void> {
    if (this.failure) return;
    const result = await this.pool.query(
      // A worker whose claim was lost (re-queued as a next attempt) must not write: its seqs
      // would collide with the new attempt's. The execution's row is locked before any line is
      // inserted: a hand-back holding it (which adds its own line at last_seq + 1) is waited for,
      // and then this claim no longer matches, so nothing is inserted; inserting first and waiting
      // for the row at the update would deadlock with it.
      `with allowed as (
         select 1 from executions
          where id = $1 and ($7::int is null or (attempt = $7 and worker_id = $8 and status = 'RUNNING'))
            for no key update
       ), inserted as (
         insert into log_chunks (execution_id, seq, stream, step, text, at)
         select $1, s, st, sp, tx, a
           from unnest($2::int[], $3::text[], $4::int[], $5::text[], $6::timestamptz[]) as u(s, st, sp, tx, a)
          where exists (select 1 from allowed)
         returning seq
       )
       update executions set last_seq = (select max(seq) from inserted) where id = $1 and exists (select 1 from inserted)`,
      [
        this.executionId,
        batch.map((l) => l.seq),
        batch.map((l) => l.stream),
        batch.map((l) => l.step),
        batch.map((l) => l.text),
        batch.map((l) => l.at.toISOString()),
        this.opts.fence?.attempt ?? null,
        this.opts.fence?.workerId ?? null,
      ],
    );
    // The update matches a row only when the batch was inserted (the fence allowed it).
    if (this.opts.onStored && result.rowCount) this.opts.onStored(batch.reduce((n, l) => n + Buffer.byteLength(l.text, 'utf8'), 0));
    this.opts.onFlush?.(batch);
  }
}
