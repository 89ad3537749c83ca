import type { Readable } from 'node:stream';

/** One entry of a tar archive: its path as archived and its type (`0` a file, `5` a directory, `2` a symlink...). */
export interface TarEntry {
  path: string;
  type: string;
  size: number;
}

const BLOCK = 512;

function field(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? length : end).toString('utf8');
}

function sizeOf(header: Buffer): number {
  // GNU base-256 for sizes past 8 GiB: the high bit of the first byte is set.
  if ((header[124]! & 0x80) !== 0) return Number(header.subarray(125, 136).readUIntBE(5, 6));
  return parseInt(field(header, 124, 12).trim() || '0', 8);
}

/** `path` from a PAX extended header's records (`<length> path=<value>\n`), if any. */
function paxPath(records: Buffer): string | undefined {
  let i = 0;
  let path: string | undefined;
  while (i < records.length) {
    const space = records.indexOf(0x20, i);
    const length = Number(records.subarray(i, space).toString('ascii'));
    if (space < 0 || !Number.isInteger(length) || length <= 0) break;
    const record = records.subarray(space + 1, i + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    i += length;
  }
  return path;
}

/**
 * Reads a tar stream (ustar, with PAX and GNU long names, as the Engine API's archives are) and
 * calls `onEntry` for each entry; the content of an entry it wants is handed to `onData` in order.
 * Only headers are kept in memory: content is streamed through or skipped.
 */
export async function readTar(
  archive: Readable,
  onEntry: (entry: TarEntry) => ((chunk: Buffer) => void) | null,
): Promise<void> {
  let pending: Buffer = Buffer.alloc(0);
  // What the reader is in: a header to read, or `left` bytes of content (and padding) to pass.
  let left = 0;
  let padding = 0;
  let sink: ((chunk: Buffer) => void) | null = null;
  let meta: 'pax' | 'longname' | null = null;
  let metaChunks: Buffer[] = [];
  let nextPath: string | undefined;
  for await (const chunk of archive) {
    pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
    while (pending.length > 0) {
      if (left > 0) {
        const take = Math.min(left, pending.length);
        const part = pending.subarray(0, take);
        if (meta !== null) metaChunks.push(part);
        else sink?.(part);
        left -= take;
        pending = pending.subarray(take);
        if (left === 0 && meta !== null) {
          const data = Buffer.concat(metaChunks);
          nextPath = meta === 'pax' ? (paxPath(data) ?? nextPath) : field(data, 0, data.length);
          [meta, metaChunks] = [null, []];
        }
        continue;
      }
      if (padding > 0) {
        const take = Math.min(padding, pending.length);
        padding -= take;
        pending = pending.subarray(take);
        continue;
      }
      if (pending.length < BLOCK) break;
      const header = pending.subarray(0, BLOCK);
      pending = pending.subarray(BLOCK);
      if (header.every((b) => b === 0)) continue; // the end-of-archive blocks
      const size = sizeOf(header);
      const type = String.fromCharCode(header[156]!) || '0';
      padding = (BLOCK - (size % BLOCK)) % BLOCK;
      left = size;
      if (type === 'x' || type === 'L') {
        meta = type === 'x' ? 'pax' : 'longname';
        if (size === 0) meta = null;
        continue;
      }
      if (type === 'g') {
        sink = null;
        continue;
      }
      const prefix = field(header, 345, 155);
      const name = nextPath ?? (prefix !== '' && header.subarray(257, 262).toString('ascii') === 'ustar' ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
      nextPath = undefined;
      sink = onEntry({ path: name, type: type === '\0' ? '0' : type, size });
    }
  }
}
