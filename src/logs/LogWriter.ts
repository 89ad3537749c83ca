import type pg from 'pg';
import { LogStream } from '../entities/enums.js';
import { encodeLogLines, uuidBytes } from './copyBinary.js';
import { copyLines, insertLines, type LogFence } from './storeLines.js';

/** One numbered log line, as stored in `log_chunks`. */
export interface LogLine {
  seq: number;
  stream: LogStream;
  step: number | null;
  text: string;
  /** Lines that arrived together may share one Date: it is never mutated. */
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
/**
 * Lines per batch at most. Each batch is a transaction (a WAL flush at commit) and a few round
 * trips: a flood is stored in a few dozen of them per million lines rather than hundreds.
 */
const MAX_BATCH_LINES = 25_000;
/** Approximate bytes per batch at most (a long line is at most 16 KiB, see LineSplitter). */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/**
 * From this many lines a batch goes by binary COPY in a transaction (see copyLines), below it by
 * one INSERT statement: the COPY's extra round trips only pay off on a big batch.
 */
const COPY_MIN_LINES = 500;
/**
 * Approximate bytes of lines appended but not yet stored above which `backpressure()` asks the
 * producer to wait: room for a full batch in flight, the next one prepared and a third accumulating.
 */
const HIGH_WATER_BYTES = 3 * MAX_BATCH_BYTES;
/** What a pending line costs besides its text: the object, its place in the arrays, its encoding. */
const LINE_OVERHEAD_BYTES = 160;

/** A batch cut from the front of the pending lines, encoded for COPY when it is big enough. */
interface Batch {
  lines: LogLine[];
  /** Approximate memory, as counted in `unwritten`. */
  cost: number;
  /** The binary COPY stream of the lines, or null when they go by INSERT. */
  copy: Buffer | null;
}

/**
 * Numbers an execution's log lines and stores them in batches.
 *
 * Invariants: seqs are assigned synchronously in `append` order, from `lastSeq + 1` without gaps,
 * and batches are written one at a time in order, each batch together with `executions.last_seq`,
 * so `last_seq` always equals the highest stored seq. While one batch is being written the next
 * accumulates, so a fast producer gets big batches and a slow one low latency; a producer that
 * honours `backpressure()` keeps the unwritten lines under about HIGH_WATER_BYTES of memory.
 * Lines with NUL are stored with U+FFFD in its place (Postgres text cannot hold NUL).
 *
 * Once a full batch has piled up behind the one in flight it is cut and encoded at once (at most
 * one such), so that Postgres gets it the moment the previous commits instead of waiting for the
 * encoding: under a flood the database, not this process, sets the pace.
 */
export class LogWriter {
  private seq: number;
  private pending: LogLine[] = [];
  /** Approximate memory of the pending lines (a part of `unwritten`). */
  private pendingCost = 0;
  /** The next batch, cut and encoded while the previous is being written. */
  private prepared: Batch | null = null;
  private writing: Promise<void> | null = null;
  /** Approximate memory of lines appended and not yet written (pending, prepared and in flight). */
  private unwritten = 0;
  private drained: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;
  private closed = false;
  private readonly execution: Buffer;
  private readonly insert: (batch: readonly LogLine[]) => Promise<boolean>;
  private readonly copy: (batch: readonly LogLine[], data: Buffer) => Promise<boolean>;

  constructor(
    pool: pg.Pool,
    executionId: string,
    lastSeq: number,
    private readonly opts: {
      flushMs?: number;
      maxBatch?: number;
      onFlush?: LogFlushListener;
      /** Write only while this claim holds (attempt fencing); without it, write while the execution exists. */
      fence?: LogFence;
      /** Applied to SYSTEM lines (Kiln's own messages): the build's output is masked upstream, as bytes. */
      mask?: (text: string) => string;
      /** Told the UTF-8 bytes of each batch actually stored (not of one fenced off): metrics. */
      onStored?: (bytes: number) => void;
    } = {},
  ) {
    this.seq = lastSeq;
    this.execution = uuidBytes(executionId);
    this.insert = insertLines(pool, executionId, opts.fence ?? null);
    this.copy = copyLines(pool, executionId, opts.fence ?? null);
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
    const cost = clean.length + LINE_OVERHEAD_BYTES;
    this.unwritten += cost;
    this.pendingCost += cost;
    if (this.pending.length >= this.maxLines() || this.pendingCost >= MAX_BATCH_BYTES) {
      if (this.writing === null) this.pump();
      else if (this.prepared === null) this.prepared = this.cut();
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
    this.clearTimer();
    while (this.pending.length > 0 || this.prepared !== null || this.writing !== null) {
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
    this.clearTimer();
    this.unwritten -= this.pendingCost + (this.prepared?.cost ?? 0);
    this.pending = [];
    this.pendingCost = 0;
    this.prepared = null;
    for (const resolve of this.drained.splice(0)) resolve();
    await this.writing;
  }

  private maxLines(): number {
    return this.opts.maxBatch ?? MAX_BATCH_LINES;
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Takes the next batch from the front of the pending lines (at least one line) and encodes it if it goes by COPY. */
  private cut(): Batch {
    const maxLines = this.maxLines();
    let count = 0;
    let cost = 0;
    while (count < this.pending.length && count < maxLines && (count === 0 || cost < MAX_BATCH_BYTES)) {
      cost += this.pending[count]!.text.length + LINE_OVERHEAD_BYTES;
      count++;
    }
    const lines = count === this.pending.length ? this.pending : this.pending.slice(0, count);
    this.pending = count === this.pending.length ? [] : this.pending.slice(count);
    this.pendingCost -= cost;
    return { lines, cost, copy: lines.length >= COPY_MIN_LINES ? encodeLogLines(this.execution, lines) : null };
  }

  /** Starts writing the next batch unless one is in flight; the batch's end starts the next. */
  private pump(): void {
    if (this.closed || this.writing !== null) return;
    if (this.prepared === null && this.pending.length === 0) return;
    this.clearTimer();
    const batch = this.prepared ?? this.cut();
    this.prepared = null;
    this.writing = this.write(batch)
      .catch((err: Error) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.writing = null;
        this.unwritten -= batch.cost;
        if (this.unwritten <= HIGH_WATER_BYTES / 2 || this.failure) for (const resolve of this.drained.splice(0)) resolve();
        // What accumulated meanwhile goes at once: the batch size adapts to the producer's pace.
        this.pump();
      });
  }

  private async write(batch: Batch): Promise<void> {
    if (this.failure) return;
    const stored = batch.copy ? await this.copy(batch.lines, batch.copy) : await this.insert(batch.lines);
    if (this.opts.onStored && stored) this.opts.onStored(batch.lines.reduce((n, l) => n + Buffer.byteLength(l.text, 'utf8'), 0));
    this.opts.onFlush?.(batch.lines);
  }
}
