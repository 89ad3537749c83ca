import { LogStream } from '../entities/enums.js';
import type { OutputStream } from '../runner/types.js';
import { LineSplitter } from './lines.js';
import type { LogWriter } from './LogWriter.js';
import type { MaskingStream, SecretMasker } from './mask.js';

/**
 * How many bytes of build output one execution may still store (KILN_MAX_LOG_BYTES), shared by
 * its steps. Past the limit the output is read and dropped, so the build runs on unhindered.
 */
export class OutputBudget {
  private used = 0;
  /** Whether output was dropped. */
  truncated = false;

  constructor(readonly maxBytes: number | null) {}

  /** How many of `n` more bytes may be stored; marks the budget truncated when not all. */
  take(n: number): number {
    if (this.maxBytes === null) return n;
    const allowed = Math.max(0, Math.min(n, this.maxBytes - this.used));
    this.used += allowed;
    if (allowed < n) this.truncated = true;
    return allowed;
  }
}

/**
 * One step's output on its way to the log: raw bytes -> secrets masked -> size budget -> lines ->
 * numbered and stored by the LogWriter. This is the only way build output reaches the database,
 * and so subscribers and the archive: nothing unmasked gets past it.
 *
 * Memory stays bounded: each stream holds at most one secret's length (masking) and one line
 * piece (splitting), and `push` returns the LogWriter's back-pressure promise for the backend to
 * stop reading while the database catches up.
 */
export class StepOutput {
  private readonly splitters: Record<OutputStream, LineSplitter> = { STDOUT: new LineSplitter(), STDERR: new LineSplitter() };
  private readonly maskers: Record<OutputStream, MaskingStream> | null;

  constructor(
    private readonly log: LogWriter,
    private readonly step: number,
    masker: SecretMasker | null,
    private readonly budget: OutputBudget,
  ) {
    this.maskers = masker ? { STDOUT: masker.stream(), STDERR: masker.stream() } : null;
  }

  push(stream: OutputStream, data: Buffer): Promise<void> | undefined {
    // Past the limit nothing more is stored, so nothing needs masking or splitting: the bytes are
    // dropped untouched. A build printing gigabytes then costs the worker only the reading (a
    // scan of every byte for secrets would cost a core), and no promise is returned, so the
    // container's output is drained as fast as the engine delivers it.
    if (this.budget.truncated) return undefined;
    this.store(stream, this.maskers ? this.maskers[stream].push(data) : data);
    return this.log.backpressure();
  }

  /** The step's output has ended: releases what masking and splitting held back. */
  end(): void {
    for (const stream of ['STDOUT', 'STDERR'] as const) {
      // After truncation what masking held back is dropped like the rest (see push).
      if (this.maskers && !this.budget.truncated) this.store(stream, this.maskers[stream].end());
      this.emit(stream, this.splitters[stream].flush());
    }
  }

  private store(stream: OutputStream, data: Buffer): void {
    if (data.length === 0) return;
    const wasTruncated = this.budget.truncated;
    const allowed = this.budget.take(data.length);
    if (allowed > 0) this.emit(stream, this.splitters[stream].push(allowed < data.length ? data.subarray(0, allowed) : data));
    if (this.budget.truncated && !wasTruncated) {
      // The line cut by the limit goes out first, then the reason it ends there.
      this.emit(stream, this.splitters[stream].flush());
      this.log.system(
        `output truncated: this execution's log reached its limit of ${this.budget.maxBytes} bytes (KILN_MAX_LOG_BYTES); the rest of its output is discarded`,
        this.step,
      );
    }
  }

  private emit(stream: OutputStream, lines: string[]): void {
    if (lines.length === 0) return;
    const to = stream === 'STDOUT' ? LogStream.STDOUT : LogStream.STDERR;
    // The lines of one chunk arrived together: one Date serves them all (never mutated).
    const at = new Date();
    for (const line of lines) this.log.append(to, this.step, line, at);
  }
}
