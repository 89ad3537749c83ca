import { LogStream } from '../entities/enums.js';
import type { OutputStream } from '../runner/types.js';
import { LineSplitter } from './lines.js';
import type { LogWriter } from './LogWriter.js';
import type { MaskingStream, SecretMasker } from './mask.js';
import { OutputBudget } from './stepOutput.js';

/** Lines of each service kept in memory for the error of a service that never got ready. */
export const LAST_LINES = 20;

/**
 * The output of one service on its way to the execution's log, as the `SERVICE` stream
 * (docs/design.md#services): raw bytes -> the job's secrets masked -> lines -> `[name] line`.
 * Its own budget of KILN_MAX_LOG_BYTES, so a chatty database cannot crowd out the steps' output;
 * past it, lines are only kept in the last-lines ring. Lines have no step (step = null).
 */
export class ServiceOutput {
  private readonly splitters: Record<OutputStream, LineSplitter> = { STDOUT: new LineSplitter(), STDERR: new LineSplitter() };
  private readonly maskers: Record<OutputStream, MaskingStream> | null;
  private readonly budget: OutputBudget;
  private readonly last: string[] = [];

  constructor(
    private readonly log: LogWriter,
    readonly name: string,
    masker: SecretMasker | null,
    maxBytes: number | null,
  ) {
    this.maskers = masker ? { STDOUT: masker.stream(), STDERR: masker.stream() } : null;
    this.budget = new OutputBudget(maxBytes);
  }

  push(stream: OutputStream, data: Buffer): void {
    this.emit(stream, this.maskers ? this.maskers[stream].push(data) : data);
  }

  /** The service stopped or is removed: what masking and splitting held back goes out. */
  end(): void {
    for (const stream of ['STDOUT', 'STDERR'] as const) {
      if (this.maskers) this.emit(stream, this.maskers[stream].end());
      this.lines(this.splitters[stream].flush());
    }
  }

  /** Its last lines (masked), oldest first. */
  lastLines(): string[] {
    return [...this.last];
  }

  private emit(stream: OutputStream, data: Buffer): void {
    if (data.length > 0) this.lines(this.splitters[stream].push(data));
  }

  private lines(lines: string[]): void {
    const at = new Date();
    for (const line of lines) {
      this.last.push(line);
      if (this.last.length > LAST_LINES) this.last.shift();
      const wasTruncated = this.budget.truncated;
      if (this.budget.take(Buffer.byteLength(line) + 1) > Buffer.byteLength(line)) this.log.append(LogStream.SERVICE, null, `[${this.name}] ${line}`, at);
      else if (!wasTruncated) {
        this.log.system(`service "${this.name}": its output reached the limit of ${this.budget.maxBytes} bytes (KILN_MAX_LOG_BYTES); the rest is not stored`);
      }
    }
  }
}
