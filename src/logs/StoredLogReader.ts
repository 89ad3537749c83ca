import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import type { LogChunkFields } from '../entities/LogChunk.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { archivedNdjsonOf } from './logPacks.js';

/** Lines that should be stored are in neither Postgres nor the archive. */
export class LogGapError extends Error {
  constructor(executionId: string, afterSeq: number) {
    super(`the log of execution ${executionId} has no line after seq ${afterSeq} in Postgres or in the archive`);
    this.name = 'LogGapError';
  }
}

interface ArchiveCursor {
  stream: Readable;
  lines: AsyncIterator<string>;
  /** Seq of the last line taken from the archive. */
  at: number;
}

/**
 * Reads an execution's stored log after a seq, page by page: the chunks in Postgres when they
 * are there (the common case, and always while the run is live), else the archived NDJSON once
 * the chunks were pruned. An archive is streamed once per reader, never loaded whole, so
 * replaying a huge archived log costs constant memory.
 */
export class StoredLogReader {
  private archive: ArchiveCursor | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly store: ArtifactStore,
    private readonly executionId: string,
  ) {}

  /**
   * Up to `limit` lines with seq > `afterSeq`, gapless from `afterSeq + 1`; [] when nothing
   * after `afterSeq` is stored anywhere. Throws LogGapError when later lines exist but the
   * next one is lost.
   */
  async readAfter(afterSeq: number, limit: number): Promise<LogChunkFields[]> {
    if (this.archive !== null && this.archive.at === afterSeq) return this.readArchive(afterSeq, limit);
    await this.close();
    const { rows } = await this.pool.query<LogChunkFields>(
      `select seq, stream, step, text, at from log_chunks where execution_id = $1 and seq > $2 order by seq limit $3`,
      [this.executionId, afterSeq, limit],
    );
    if (rows.length > 0 && rows[0]!.seq === afterSeq + 1) return rows;
    const opened = await this.openArchive(afterSeq);
    if (opened) return this.readArchive(afterSeq, limit);
    if (rows.length > 0) throw new LogGapError(this.executionId, afterSeq);
    return [];
  }

  /** Releases the archive stream, if one is open. */
  async close(): Promise<void> {
    const a = this.archive;
    this.archive = null;
    if (a !== null) {
      await a.lines.return?.();
      a.stream.destroy();
    }
  }

  private async openArchive(afterSeq: number): Promise<boolean> {
    let stream: Readable | null;
    try {
      stream = await archivedNdjsonOf(this.pool, this.store, this.executionId);
    } catch (err) {
      if ((err as Error).name === 'ObjectNotFoundError') return false;
      throw err;
    }
    if (stream === null) return false;
    const lines = createInterface({ input: stream, crlfDelay: Infinity })[Symbol.asyncIterator]();
    this.archive = { stream, lines, at: 0 };
    // Skip what the caller already has.
    while (this.archive.at < afterSeq) {
      const skipped = await this.nextArchived();
      if (skipped === null) return true;
    }
    return true;
  }

  private async nextArchived(): Promise<LogChunkFields | null> {
    const a = this.archive!;
    for (;;) {
      const next = await a.lines.next();
      if (next.done) return null;
      if (next.value.length === 0) continue;
      const o = JSON.parse(next.value) as Omit<LogChunkFields, 'at'> & { at: string };
      a.at = o.seq;
      return { ...o, at: new Date(o.at) };
    }
  }

  private async readArchive(afterSeq: number, limit: number): Promise<LogChunkFields[]> {
    const out: LogChunkFields[] = [];
    while (out.length < limit) {
      const line = await this.nextArchived();
      if (line === null) break;
      if (line.seq <= afterSeq) continue;
      if (line.seq !== afterSeq + out.length + 1) throw new LogGapError(this.executionId, afterSeq + out.length);
      out.push(line);
    }
    if (out.length < limit) await this.close();
    return out;
  }
}
