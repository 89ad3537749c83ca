import type pg from 'pg';
import type { LogChunkFields } from '../entities/LogChunk.js';

/** Bounds of one execution's shared tail; see {@link LogTail}. */
export interface LogTailLimits {
  /** Most lines kept; default 10,000. */
  maxLines: number;
  /** Most bytes of text kept (roughly, UTF-16 size); default 4 MiB. */
  maxBytes: number;
  /** Most rows read from Postgres in one query; default 2,000. */
  fetchPage: number;
}

/** Per execution and API process: about 1 MB for typical lines, never more than 4 MiB of text. */
export const DEFAULT_TAIL_LIMITS: LogTailLimits = { maxLines: 10_000, maxBytes: 4 * 1024 * 1024, fetchPage: 2_000 };

/** Per-line overhead added to the text size when counting bytes (object, Date, seq...). */
const LINE_OVERHEAD = 96;

/**
 * The newest lines of one execution's log, shared by every subscriber of that execution in this
 * process, so that N subscribers cost one Postgres read per batch instead of N.
 *
 * Invariants:
 * - `lines` is contiguous: `lines[i].seq === firstSeq + i`, and the last one is `cachedTo`.
 * - Everything up to `firstSeq - 1` is in storage (Postgres chunks or the archive); the tail
 *   only starts at the seq that was stored when it was created, so it never loads old history.
 * - The ring is bounded by lines and bytes; a subscriber that falls behind its start reads
 *   storage instead, so a slow subscriber costs reads, never memory.
 */
export class LogTail {
  private lines: LogChunkFields[] = [];
  private bytes = 0;
  private _firstSeq = 1;
  private _cachedTo = 0;
  private announced = 0;
  private fetching = false;
  private initialised = false;
  private _finalSeq: number | null = null;
  private waiters: { promise: Promise<void>; resolve: () => void } | null = null;
  /** Subscribers holding this tail; the hub drops it at 0. */
  refs = 0;
  /** Resolves once the starting point was read from Postgres. */
  readonly ready: Promise<void>;

  constructor(
    private readonly pool: pg.Pool,
    readonly executionId: string,
    private readonly limits: LogTailLimits,
    private readonly onError: (err: Error) => void,
  ) {
    this.ready = this.init();
    // Each subscriber awaits `ready` and sees a failure there; nothing else may report it.
    this.ready.catch(() => {});
  }

  /** Seq of the oldest line held; lines before it must be read from storage. */
  get firstSeq(): number {
    return this._firstSeq;
  }

  /** Highest seq held (or, while empty, the seq stored when the tail started). */
  get cachedTo(): number {
    return this._cachedTo;
  }

  /** The execution's last seq once it has finished, else null. */
  get finalSeq(): number | null {
    return this._finalSeq;
  }

  private async init(): Promise<void> {
    const { rows } = await this.pool.query<{ last_seq: number; final: boolean }>(
      `select greatest(e.last_seq, coalesce((select max(seq) from log_chunks where execution_id = e.id), 0)) as last_seq,
              e.status in ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT') as final
         from executions e where e.id = $1`,
      [this.executionId],
    );
    const start = rows[0]?.last_seq ?? 0;
    this._cachedTo = start;
    this._firstSeq = start + 1;
    if (rows[0]?.final) this._finalSeq = Math.max(this._finalSeq ?? 0, start);
    this.initialised = true;
    this.fetchIfBehind();
  }

  /** Lines with seq > `afterSeq`, at most `max`, when the tail holds `afterSeq + 1`; else []. */
  linesAfter(afterSeq: number, max: number): LogChunkFields[] {
    if (afterSeq + 1 < this._firstSeq || afterSeq >= this._cachedTo) return [];
    const from = afterSeq + 1 - this._firstSeq;
    return this.lines.slice(from, from + max);
  }

  /** Resolves at the next change (new lines, the end of the run, or a sweep). Shared by all waiters. */
  changed(): Promise<void> {
    if (this.waiters === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.waiters = { promise, resolve };
    }
    return this.waiters.promise;
  }

  /** Wakes every waiter, e.g. after a periodic sweep, so they re-check where they stand. */
  wake(): void {
    const w = this.waiters;
    this.waiters = null;
    w?.resolve();
  }

  /** Lines up to `lastSeq` are stored (from a NOTIFY or a sweep). */
  announce(lastSeq: number): void {
    if (lastSeq <= this.announced) return;
    this.announced = lastSeq;
    this.fetchIfBehind();
  }

  /** The execution has finished with `lastSeq` as its last line. */
  finish(lastSeq: number): void {
    this._finalSeq = Math.max(this._finalSeq ?? 0, lastSeq);
    this.announce(lastSeq);
    this.wake();
  }

  private fetchIfBehind(): void {
    // Before the starting point is known, a fetch would read the whole history.
    if (!this.initialised || this.fetching || this.announced <= this._cachedTo) return;
    this.fetching = true;
    this.fetch()
      .catch((err: Error) => this.onError(err))
      .finally(() => {
        this.fetching = false;
        this.wake();
      });
  }

  private async fetch(): Promise<void> {
    while (this.announced > this._cachedTo) {
      const { rows } = await this.pool.query<LogChunkFields>(
        `select seq, stream, step, text, at from log_chunks where execution_id = $1 and seq > $2 order by seq limit $3`,
        [this.executionId, this._cachedTo, this.limits.fetchPage],
      );
      // Pruned meanwhile (archived): readers fall back to storage for these seqs.
      if (rows.length === 0 || rows[0]!.seq !== this._cachedTo + 1) {
        this.skipTo(this.announced);
        return;
      }
      this.append(rows);
      this.wake();
    }
  }

  private append(rows: LogChunkFields[]): void {
    for (const line of rows) {
      this.lines.push(line);
      this.bytes += line.text.length * 2 + LINE_OVERHEAD;
    }
    this._cachedTo = rows[rows.length - 1]!.seq;
    let drop = 0;
    while (this.lines.length - drop > 0 && (this.lines.length - drop > this.limits.maxLines || this.bytes > this.limits.maxBytes)) {
      this.bytes -= this.lines[drop]!.text.length * 2 + LINE_OVERHEAD;
      drop++;
    }
    if (drop > 0) {
      this.lines = this.lines.slice(drop);
      this._firstSeq += drop;
    }
  }

  /** Empties the ring and moves its start past `seq` (those lines are read from storage). */
  private skipTo(seq: number): void {
    this.lines = [];
    this.bytes = 0;
    this._cachedTo = Math.max(this._cachedTo, seq);
    this._firstSeq = this._cachedTo + 1;
  }
}
