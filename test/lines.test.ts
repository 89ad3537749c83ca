import { describe, expect, it } from 'vitest';
import { cutUtf8, DEFAULT_MAX_LINE_BYTES, LineSplitter } from '../src/logs/lines.js';

/** Feeds `chunks` one by one, then flushes; returns every line in order. */
function split(chunks: Array<string | Buffer>, splitter = new LineSplitter()): string[] {
  const lines: string[] = [];
  for (const chunk of chunks) lines.push(...splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
  lines.push(...splitter.flush());
  return lines;
}

/** Every way of cutting `bytes` in two. */
function allCuts(bytes: Buffer): Buffer[][] {
  const cuts: Buffer[][] = [];
  for (let at = 0; at <= bytes.length; at++) cuts.push([bytes.subarray(0, at), bytes.subarray(at)]);
  return cuts;
}

describe('LineSplitter', () => {
  it('returns complete lines without their newline and keeps blank lines', () => {
    expect(split(['a\nb\n\nc\n'])).toEqual(['a', 'b', '', 'c']);
  });

  it('joins a line that spans several chunks', () => {
    const splitter = new LineSplitter();
    expect(splitter.push(Buffer.from('hel'))).toEqual([]);
    expect(splitter.push(Buffer.from('lo wor'))).toEqual([]);
    expect(splitter.push(Buffer.from('ld\nnext'))).toEqual(['hello world']);
    expect(splitter.flush()).toEqual(['next']);
  });

  it('keeps a multi-byte character whole wherever the chunk boundary falls', () => {
    const text = 'é€😀\n漢字\n';
    for (const cut of allCuts(Buffer.from(text))) {
      expect(split(cut)).toEqual(['é€😀', '漢字']);
    }
    const oneByteAtATime = [...Buffer.from(text)].map((byte) => Buffer.from([byte]));
    expect(split(oneByteAtATime)).toEqual(['é€😀', '漢字']);
  });

  it('strips the carriage return of CRLF, also when CR and LF arrive in different chunks', () => {
    expect(split(['one\r\ntwo\r\n'])).toEqual(['one', 'two']);
    expect(split(['one\r', '\ntwo\r', '\n'])).toEqual(['one', 'two']);
    expect(split(['a\rb\n'])).toEqual(['a\rb']);
    expect(split(['\r\n'])).toEqual(['']);
  });

  it('emits the last line without a newline only on flush', () => {
    const splitter = new LineSplitter();
    expect(splitter.push(Buffer.from('done\npartial'))).toEqual(['done']);
    expect(splitter.flush()).toEqual(['partial']);
    expect(splitter.flush()).toEqual([]);
    expect(split(['x\n'])).toEqual(['x']);
    expect(split([])).toEqual([]);
    expect(split(['last\r'])).toEqual(['last']);
  });

  it('turns an incomplete character at the end of the stream into U+FFFD', () => {
    const euro = Buffer.from('€');
    expect(split([Buffer.concat([Buffer.from('x'), euro.subarray(0, 2)])])).toEqual(['x\uFFFD']);
  });

  it('splits a line longer than the maximum into pieces of at most that many bytes', () => {
    const line = 'x'.repeat(DEFAULT_MAX_LINE_BYTES * 2 + 10);
    const pieces = split([line + '\n']);
    expect(pieces.map((p) => p.length)).toEqual([DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_LINE_BYTES, 10]);
    expect(pieces.join('')).toBe(line);
  });

  it('cuts long lines on character boundaries, counting UTF-8 bytes', () => {
    const splitter = new LineSplitter({ maxLineBytes: 5 });
    // é is 2 bytes, 😀 is 4: no piece may end inside either.
    const pieces = split(['ééé😀😀ab\n'], splitter);
    expect(pieces).toEqual(['éé', 'é', '😀', '😀a', 'b']);
    for (const piece of pieces) expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(5);
  });

  it('hands out pieces of an endless line before its newline, and cuts the same way however it arrives', () => {
    const splitter = new LineSplitter({ maxLineBytes: 8 });
    const early = splitter.push(Buffer.from('0123456789abcdefXY'));
    expect(early).toEqual(['01234567', '89abcdef']);
    expect(splitter.push(Buffer.from('Z\n'))).toEqual(['XYZ']);

    const line = 'αβγδεζηθικλμνξοπ'.repeat(3);
    const whole = split([line + '\n'], new LineSplitter({ maxLineBytes: 7 }));
    const bytes = Buffer.from(line + '\n');
    for (const cut of allCuts(bytes)) {
      expect(split(cut, new LineSplitter({ maxLineBytes: 7 }))).toEqual(whole);
    }
    const byteByByte = [...bytes].map((b) => Buffer.from([b]));
    expect(split(byteByByte, new LineSplitter({ maxLineBytes: 7 }))).toEqual(whole);
  });

  it('does not add an empty line when a CRLF follows a line of exactly the maximum', () => {
    expect(split(['12345678\r', '\n'], new LineSplitter({ maxLineBytes: 8 }))).toEqual(['12345678']);
    expect(split(['123456789\r', '\n'], new LineSplitter({ maxLineBytes: 8 }))).toEqual(['12345678', '9']);
    expect(split(['12345678\n', '\n'], new LineSplitter({ maxLineBytes: 8 }))).toEqual(['12345678', '']);
  });

  it('refuses a maximum too small to hold any character', () => {
    expect(() => new LineSplitter({ maxLineBytes: 3 })).toThrow(RangeError);
    expect(() => new LineSplitter({ maxLineBytes: 4.5 })).toThrow(RangeError);
  });
});

describe('cutUtf8', () => {
  it('returns the text itself when it fits, and one empty piece for empty text', () => {
    expect(cutUtf8('abc', 4)).toEqual(['abc']);
    expect(cutUtf8('', 4)).toEqual(['']);
  });

  it('keeps a lone surrogate as one 3-byte unit', () => {
    expect(cutUtf8('ab\uD800cd', 4)).toEqual(['ab', '\uD800c', 'd']);
  });
});
