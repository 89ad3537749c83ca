import { describe, expect, it } from 'vitest';
import { copyFields } from '../src/logs/copyBinary.js';

/** A binary COPY TO stream of one-field rows (null for a null field), as Postgres sends it. */
function copyStream(fields: Array<string | null>): Buffer {
  const parts = [Buffer.from('PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0', 'latin1')];
  for (const field of fields) {
    const head = Buffer.alloc(6);
    head.writeInt16BE(1, 0);
    if (field === null) {
      head.writeInt32BE(-1, 2);
      parts.push(head);
    } else {
      const bytes = Buffer.from(field);
      head.writeInt32BE(bytes.length, 2);
      parts.push(head, bytes);
    }
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

async function collect(chunks: Buffer[]): Promise<string> {
  const out: Buffer[] = [];
  for await (const piece of copyFields((async function* () { yield* chunks; })())) out.push(piece);
  return Buffer.concat(out).toString();
}

describe('copyFields', () => {
  const fields = ['first line\n', null, '', 'ünïcödé ✓ 🚀\n', 'x'.repeat(300)];
  const expected = fields.join('');

  it('passes on the bytes of every field, in order, however the stream is cut', async () => {
    const stream = copyStream(fields);
    expect(await collect([stream])).toBe(expected);
    for (let cut = 1; cut < stream.length; cut++) {
      expect(await collect([stream.subarray(0, cut), stream.subarray(cut)])).toBe(expected);
    }
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(await collect(bytes)).toBe(expected);
  });

  it('refuses a stream that ends before its trailer or is not binary COPY', async () => {
    const stream = copyStream(fields);
    await expect(collect([stream.subarray(0, stream.length - 2)])).rejects.toThrow(/before its trailer/);
    await expect(collect([Buffer.from('not a copy stream at all')])).rejects.toThrow(/not a binary COPY/);
  });
});
