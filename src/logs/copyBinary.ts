import type { LogStream } from '../entities/enums.js';
import type { LogChunkFields } from '../entities/LogChunk.js';

/**
 * Encoding of log lines in Postgres's binary COPY format, for
 * `copy log_chunks (execution_id, seq, stream, step, text, at) from stdin (format binary)`.
 *
 * Binary rather than text COPY because Postgres then parses nothing: a timestamp is 8 bytes
 * instead of an ISO string run through timestamptz_in, and a text needs no escaping. That is most
 * of what storing a short line costs the server besides the row itself.
 */
export const COPY_LOG_LINES_SQL = `copy log_chunks (execution_id, seq, stream, step, text, at) from stdin (format binary)`;

/** Signature, flags (none) and header extension length (0). */
const HEADER = Buffer.from('PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0', 'latin1');
/** A tuple with field count -1 ends the data. */
const TRAILER = Buffer.from([0xff, 0xff]);
/** Postgres counts timestamps in microseconds from 2000-01-01 UTC. */
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const TWO_POW_32 = 2 ** 32;
/** Bytes of one tuple besides its text: field count, then each field's length and value. */
const TUPLE_FIXED_BYTES = 2 + (4 + 16) + (4 + 4) + (4 + 7) + (4 + 4) + 4 + (4 + 8);

/** The 16 bytes of a UUID in its canonical text form; throws on anything else. */
export function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replaceAll('-', '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

/** Encoder buffers are slabs of this size, reused across batches (see CopyEncoder). */
const SLAB_BYTES = 1024 * 1024;
/** Free slabs kept for reuse in this process at most: beyond, they are left to the GC. */
const MAX_FREE_SLABS = 8;
const freeSlabs: Buffer[] = [];

/**
 * Encodes log lines as they are appended into one binary COPY stream (header, tuples, trailer),
 * so that a batch needs neither an object per line nor an encoding pass when it is sent.
 *
 * Its memory is slabs of 1 MiB taken from a small free list and given back by `release()` once
 * Postgres has taken the data: a flood of lines then reuses the same few buffers instead of
 * leaving a trail of garbage for the GC, which the process's peak memory would show.
 *
 * Every stream name is 6 or 7 ASCII bytes (STDOUT, STDERR, SYSTEM, SERVICE). Texts must hold no NUL (LogWriter
 * replaces them); lone surrogates become U+FFFD, as in every UTF-8 encoding Node makes, so
 * Postgres always receives valid UTF-8.
 */
export class CopyEncoder {
  /** Filled parts of the stream, in order. */
  private readonly parts: Buffer[] = [];
  /** Every slab taken, to give back. */
  private readonly slabs: Buffer[] = [];
  private slab: Buffer;
  private offset: number;
  /** Lines that arrived together share their Date: its conversion is done once. */
  private lastAt: Date | null = null;
  private hi = 0;
  private lo = 0;
  /** UTF-8 bytes of the texts encoded so far. */
  textBytes = 0;

  constructor(private readonly execution: Buffer) {
    this.slab = this.take(HEADER.length);
    this.offset = HEADER.copy(this.slab, 0);
  }

  add(seq: number, stream: LogStream, step: number | null, text: string, at: Date): void {
    // Room for the worst case: 3 UTF-8 bytes per UTF-16 code unit.
    const room = TUPLE_FIXED_BYTES + text.length * 3;
    if (this.offset + room > this.slab.length) {
      this.parts.push(this.slab.subarray(0, this.offset));
      this.slab = this.take(room);
      this.offset = 0;
    }
    const buf = this.slab;
    let o = buf.writeInt16BE(6, this.offset);
    o = buf.writeInt32BE(16, o);
    o += this.execution.copy(buf, o);
    o = buf.writeInt32BE(4, o);
    o = buf.writeInt32BE(seq, o);
    o = buf.writeInt32BE(stream.length, o);
    o += buf.write(stream, o, stream.length, 'latin1');
    if (step === null) o = buf.writeInt32BE(-1, o);
    else {
      o = buf.writeInt32BE(4, o);
      o = buf.writeInt32BE(step, o);
    }
    const textBytes = buf.write(text, o + 4, 'utf8');
    o = buf.writeInt32BE(textBytes, o) + textBytes;
    this.textBytes += textBytes;
    if (at !== this.lastAt) {
      this.lastAt = at;
      // Exact in a double for ±285,000 years; written as two halves to avoid a BigInt per line.
      const micros = (at.getTime() - PG_EPOCH_MS) * 1000;
      this.hi = Math.floor(micros / TWO_POW_32);
      this.lo = micros - this.hi * TWO_POW_32;
    }
    o = buf.writeInt32BE(8, o);
    o = buf.writeInt32BE(this.hi, o);
    this.offset = buf.writeUInt32BE(this.lo, o);
  }

  /** The whole stream, trailer included, as consecutive parts; call once, after the last add. */
  finish(): Buffer[] {
    if (this.offset + TRAILER.length > this.slab.length) {
      this.parts.push(this.slab.subarray(0, this.offset));
      this.slab = this.take(TRAILER.length);
      this.offset = 0;
    }
    this.offset += TRAILER.copy(this.slab, this.offset);
    this.parts.push(this.slab.subarray(0, this.offset));
    return this.parts;
  }

  /**
   * Gives the slabs back for reuse. Only once nothing reads the parts any more (Postgres has
   * acknowledged the COPY, or it was never sent); the encoder is unusable afterwards.
   */
  release(): void {
    for (const slab of this.slabs.splice(0)) {
      if (slab.length === SLAB_BYTES && freeSlabs.length < MAX_FREE_SLABS) freeSlabs.push(slab);
    }
  }

  private take(bytes: number): Buffer {
    // allocUnsafeSlow: a slab of its own, not a slice of Node's shared pool.
    const slab = bytes > SLAB_BYTES ? Buffer.allocUnsafeSlow(bytes) : (freeSlabs.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES));
    this.slabs.push(slab);
    return slab;
  }
}

/** One COPY stream holding `lines`, as one buffer (for tests and one-off use). */
export function encodeLogLines(execution: Buffer, lines: readonly LogChunkFields[]): Buffer {
  const encoder = new CopyEncoder(execution);
  for (const l of lines) encoder.add(l.seq, l.stream, l.step, l.text, l.at);
  return Buffer.concat(encoder.finish());
}

/** Where copyFields is in the COPY stream: the fixed-size piece it is gathering, or field data. */
type FieldState = 'header' | 'tuple' | 'length' | 'data' | 'end';
const HEADER_BYTES = 19;
const NO_BYTES: Buffer = Buffer.alloc(0);

/**
 * The bytes of the fields of a binary COPY TO stream whose rows have one field, concatenated
 * (nulls contribute nothing). Field data is passed on as slices of the chunks it arrived in, as
 * soon as it arrives: memory stays at one chunk whatever the size of a field.
 */
export async function* copyFields(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let state: FieldState = 'header';
  let want = HEADER_BYTES;
  let gathered: Buffer = NO_BYTES;
  let data = 0;
  for await (const chunk of chunks) {
    let o = 0;
    while (o < chunk.length && state !== 'end') {
      if (state === 'data') {
        const n = Math.min(data, chunk.length - o);
        yield chunk.subarray(o, o + n);
        o += n;
        data -= n;
        if (data === 0) [state, want] = ['tuple', 2];
        continue;
      }
      const n = Math.min(want - gathered.length, chunk.length - o);
      gathered = gathered.length === 0 && n === want ? chunk.subarray(o, o + n) : Buffer.concat([gathered, chunk.subarray(o, o + n)]);
      o += n;
      if (gathered.length < want) continue;
      [state, want, data] = nextFieldState(state, gathered);
      gathered = NO_BYTES;
    }
  }
  if (state !== 'end') throw new Error('the COPY stream ended before its trailer');
}

/** What follows a complete fixed-size piece of the stream. */
function nextFieldState(state: FieldState, piece: Buffer): [FieldState, number, number] {
  switch (state) {
    case 'header':
      if (!piece.subarray(0, 11).equals(HEADER.subarray(0, 11)) || piece.readInt32BE(15) !== 0) throw new Error('not a binary COPY stream Kiln can read');
      return ['tuple', 2, 0];
    case 'tuple': {
      const fields = piece.readInt16BE(0);
      if (fields === -1) return ['end', 0, 0];
      if (fields !== 1) throw new Error(`a COPY row with ${fields} fields where one was expected`);
      return ['length', 4, 0];
    }
    case 'length': {
      const length = piece.readInt32BE(0);
      return length > 0 ? ['data', 0, length] : ['tuple', 2, 0]; // -1: null, 0: empty
    }
    default:
      throw new Error(`copyFields: no fixed-size piece in state ${state}`);
  }
}
