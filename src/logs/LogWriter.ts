import type pg from 'pg';
import { LogStream } from '../entities/enums.js';
import { CopyEncoder, uuidBytes } from './copyBinary.js';
import { copyLines, insertLines, type LogFence } from './storeLines.js';
import type { LogChunkFields } from '../entities/LogChunk.js';

/** Called after each batch is durably stored, in seq order (the seam for live fan-out). */
export type LogFlushListener = (lines: readonly LogChunkFields[]) => void;

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
/** What a pending line costs besides its text: its object (small batches) or its encoding, and its share of the arrays. */
const LINE_OVERHEAD_BYTES = 100;

/**
 * Lines appended together, to be stored in one go. A small batch keeps its lines as objects
 * (for the INSERT); from COPY_MIN_LINES on they are encoded for COPY as they come and, unless a
 * listener wants them, not kept otherwise: a flood costs no object per line.
 */
interface Batch {
  /** The lines, while there is no encoder or when `onFlush` wants them. */
  lines: LogChunkFields[];
  encoder: CopyEncoder | null;
  count: number;
  lastSeq: number;
  /** Approximate memory, as counted in `unwritten`. */
  cost: number;
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
 * A batch is encoded while it fills (see Batch), and a full one waits sealed behind the one in
 * flight: Postgres gets it the moment the previous commits, and under a flood the database, not
 * this process, sets the pace.
 */
export class LogWriter {
  private seq: number;
  /** The batch lines are appended to. */
  private open: Batch | null = null;
  /** Full batches waiting, oldest first. */
  private sealed: Batch[] = [];
  private writing: Promise<void> | null = null;
  /** Approximate memory of lines appended and not yet written (open, sealed and in flight). */
  private unwritten = 0;
  private drained: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;
  private closed = false;
  /** Set by takeTail: the open batch is the caller's to store, so pump leaves it alone. */
  private holdOpen = false;
  private readonly execution: Buffer;
  private readonly insert: (batch: readonly LogChunkFields[]) => Promise<boolean>;
  private readonly copy: (lastSeq: number, data: readonly Buffer[]) => Promise<boolean>;

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
    const batch = (this.open ??= { lines: [], encoder: null, count: 0, lastSeq: 0, cost: 0 });
    this.add(batch, { seq: ++this.seq, stream, step, text: clean, at });
    const cost = clean.length + LINE_OVERHEAD_BYTES;
    this.unwritten += cost;
    batch.cost += cost;
    if (batch.count >= this.maxLines() || batch.cost >= MAX_BATCH_BYTES) {
      this.sealed.push(batch);
      this.open = null;
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
    this.clearTimer();
    while (this.open !== null || this.sealed.length > 0 || this.writing !== null) {
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
    for (const batch of this.sealed.splice(0)) this.drop(batch);
    if (this.open) this.drop(this.open);
    this.open = null;
    for (const resolve of this.drained.splice(0)) resolve();
    await this.writing;
  }

  /**
   * Ends the writer and hands its last lines to the caller, who stores them in the statement that
   * records the run's outcome (one commit instead of two; see src/executions/finish.ts): every
   * batch before them is stored first, and a big last batch (COPY) is stored here, leaving []. The
   * seqs and the fence are the caller's to keep; after storing, it calls reportStored. Rejects as
   * flush does, with nothing handed over.
   */
  async takeTail(): Promise<LogChunkFields[]> {
    this.holdOpen = true;
    this.clearTimer();
    while (this.sealed.length > 0 || this.writing !== null) {
      this.pump();
      await this.writing;
    }
    if (this.failure) throw this.failure;
    const open = this.open;
    this.open = null;
    this.closed = true;
    if (open === null) return [];
    if (open.encoder !== null) {
      this.writing = this.write(open).finally(() => {
        this.writing = null;
        this.unwritten -= open.cost;
      });
      await this.writing;
      return [];
    }
    this.unwritten -= open.cost;
    return open.lines;
  }

  /** Tells the writer's listeners (metrics, live fan-out) that lines it handed over are stored. */
  reportStored(lines: readonly LogChunkFields[]): void {
    if (lines.length === 0) return;
    this.opts.onStored?.(lines.reduce((n, l) => n + Buffer.byteLength(l.text, 'utf8'), 0));
    this.opts.onFlush?.(lines);
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

  private add(batch: Batch, line: LogChunkFields): void {
    batch.count++;
    batch.lastSeq = line.seq;
    if (batch.encoder === null && batch.count >= COPY_MIN_LINES) {
      // Big enough for COPY: what it holds is encoded now, and what follows as it comes.
      batch.encoder = new CopyEncoder(this.execution);
      for (const l of batch.lines) batch.encoder.add(l.seq, l.stream, l.step, l.text, l.at);
      if (!this.opts.onFlush) batch.lines = [];
    }
    if (batch.encoder === null || this.opts.onFlush) batch.lines.push(line);
    batch.encoder?.add(line.seq, line.stream, line.step, line.text, line.at);
  }

  /** Forgets a batch that will not be written. */
  private drop(batch: Batch): void {
    this.unwritten -= batch.cost;
    batch.encoder?.release(); // never sent: nothing reads its buffers
  }

  /** Starts writing the next batch unless one is in flight; the batch's end starts the next. */
  private pump(): void {
    if (this.closed || this.writing !== null) return;
    const batch = this.sealed.shift() ?? (this.holdOpen ? null : this.open);
    if (!batch) return;
    if (batch === this.open) this.open = null;
    this.clearTimer();
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
    let stored: boolean;
    let bytes: number;
    if (batch.encoder) {
      stored = await this.copy(batch.lastSeq, batch.encoder.finish());
      bytes = batch.encoder.textBytes;
      // Only after Postgres answered: on an error the buffers may still sit in a socket's queue.
      batch.encoder.release();
    } else {
      stored = await this.insert(batch.lines);
      bytes = batch.lines.reduce((n, l) => n + Buffer.byteLength(l.text, 'utf8'), 0);
    }
    if (this.opts.onStored && stored) this.opts.onStored(bytes);
    this.opts.onFlush?.(batch.lines);
  }
}
