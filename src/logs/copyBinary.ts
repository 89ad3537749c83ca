import type { LogLine } from './LogWriter.js';

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
const TUPLE_FIXED_BYTES = 2 + (4 + 16) + (4 + 4) + (4 + 6) + (4 + 4) + 4 + (4 + 8);
/** A null step has no value after its length (-1). */
const NULL_STEP_SAVING = 4;

/** The 16 bytes of a UUID in its canonical text form; throws on anything else. */
export function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replaceAll('-', '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

/**
 * One COPY stream (header, tuples, trailer) holding `lines` for the execution whose UUID bytes
 * are `execution`. Every stream name is 6 ASCII bytes (STDOUT, STDERR, SYSTEM). Texts must hold
 * no NUL (LogWriter replaces them); lone surrogates become U+FFFD, as in every UTF-8 encoding
 * Node makes, so Postgres always receives valid UTF-8.
 */
export function encodeLogLines(execution: Buffer, lines: readonly LogLine[]): Buffer {
  let size = HEADER.length + TRAILER.length;
  for (const line of lines) {
    size += TUPLE_FIXED_BYTES + Buffer.byteLength(line.text, 'utf8') - (line.step === null ? NULL_STEP_SAVING : 0);
  }
  const buf = Buffer.allocUnsafe(size);
  let o = HEADER.copy(buf, 0);
  // Lines of one output chunk share their Date: its conversion is done once.
  let lastAt: Date | null = null;
  let hi = 0;
  let lo = 0;
  for (const line of lines) {
    o = buf.writeInt16BE(6, o);
    o = buf.writeInt32BE(16, o);
    o += execution.copy(buf, o);
    o = buf.writeInt32BE(4, o);
    o = buf.writeInt32BE(line.seq, o);
    o = buf.writeInt32BE(6, o);
    o += buf.write(line.stream, o, 6, 'latin1');
    if (line.step === null) o = buf.writeInt32BE(-1, o);
    else {
      o = buf.writeInt32BE(4, o);
      o = buf.writeInt32BE(line.step, o);
    }
    const textBytes = buf.write(line.text, o + 4, 'utf8');
    o = buf.writeInt32BE(textBytes, o) + textBytes;
    if (line.at !== lastAt) {
      lastAt = line.at;
      // Exact in a double for ±285,000 years; written as two halves to avoid a BigInt per line.
      const micros = (line.at.getTime() - PG_EPOCH_MS) * 1000;
      hi = Math.floor(micros / TWO_POW_32);
      lo = micros - hi * TWO_POW_32;
    }
    o = buf.writeInt32BE(8, o);
    o = buf.writeInt32BE(hi, o);
    o = buf.writeUInt32BE(lo, o);
  }
  o += TRAILER.copy(buf, o);
  if (o !== size) throw new Error(`COPY encoding wrote ${o} bytes, expected ${size}`);
  return buf;
}
