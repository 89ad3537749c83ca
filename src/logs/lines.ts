import { StringDecoder } from 'node:string_decoder';

/** A line longer than this (in UTF-8 bytes) is delivered as several pieces. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;

/** Options of a {@link LineSplitter}. */
export interface LineSplitterOptions {
  /**
   * Largest piece, in UTF-8 bytes, before a line is cut (default 16 KiB). Cuts fall on
   * character boundaries, never inside a multi-byte character. At least 4.
   */
  maxLineBytes?: number;
}

/**
 * Turns the raw chunks of ONE output stream into lines, without their `\n` and without a
 * trailing `\r`. Chunk boundaries may fall anywhere, including inside a UTF-8 character.
 *
 * Invariants:
 * - the text between calls is held in one pending piece of at most `maxLineBytes` bytes,
 *   so an endless line without a newline costs bounded memory: full pieces are handed out
 *   as soon as they are complete;
 * - the cuts of a long line do not depend on how its chunks arrived;
 * - invalid UTF-8 becomes U+FFFD rather than an error.
 */
export class LineSplitter {
  readonly maxLineBytes: number;
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  /** Pieces of the current line have already been handed out. */
  private continued = false;

  constructor(options: LineSplitterOptions = {}) {
    const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isInteger(max) || max < 4) {
      throw new RangeError(`maxLineBytes must be an integer >= 4, got ${max}`);
    }
    this.maxLineBytes = max;
  }

  /** Feeds one chunk; returns the lines (or pieces of long lines) it completed. */
  push(chunk: Buffer): string[] {
    const text = this.pending + this.decoder.write(chunk);
    const out: string[] = [];
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      this.endLine(text.slice(start, nl), out);
      start = nl + 1;
    }
    this.pending = start === 0 ? text : text.slice(start);
    if (this.pending.length * 3 > this.maxLineBytes) {
      const pieces = cutUtf8(this.pending, this.maxLineBytes);
      if (pieces.length > 1) {
        // The tail stays pending: it may still end in the `\r` of a CRLF.
        this.pending = pieces.pop()!;
        out.push(...pieces);
        this.continued = true;
      }
    }
    return out;
  }

  /** Ends the stream: returns the last line if it had no newline. The splitter is reusable. */
  flush(): string[] {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    const out: string[] = [];
    if (rest !== '') this.endLine(rest, out);
    this.continued = false;
    return out;
  }

  private endLine(line: string, out: string[]): void {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    // After pieces were handed out, an empty tail is what was left of `\r\n`: no new line.
    if (text.length * 3 <= this.maxLineBytes) {
      // The common case, without cutUtf8's array: a line that cannot be too long.
      if (!(text === '' && this.continued)) out.push(text);
    } else {
      for (const piece of cutUtf8(text, this.maxLineBytes)) out.push(piece);
    }
    this.continued = false;
  }
}

/**
 * Cuts `text` greedily into pieces of at most `max` UTF-8 bytes, on code point boundaries.
 * Always returns at least one piece ('' for '').
 */
export function cutUtf8(text: string, max: number): string[] {
  // A UTF-16 code unit never takes more than 3 bytes in UTF-8 (a surrogate pair: 4 for 2).
  if (text.length * 3 <= max) return [text];
  const pieces: string[] = [];
  let start = 0;
  let bytes = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    let units = 1;
    let size: number;
    if (code < 0x80) size = 1;
    else if (code < 0x800) size = 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      size = 4;
      units = 2;
    } else size = 3;
    if (bytes + size > max) {
      pieces.push(text.slice(start, i));
      start = i;
      bytes = 0;
    }
    bytes += size;
    i += units;
  }
  pieces.push(text.slice(start));
  return pieces;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
