import { describe, expect, it } from 'vitest';
import { MASK, SecretMasker, secretForms } from '../src/logs/mask.js';

const SECRET = 's3cr3t-Value_42';
const LONGER = `${SECRET}-and-more`;

/** Feeds `text` to a masking stream in the given pieces and returns everything it let out. */
function streamed(masker: SecretMasker, pieces: Array<string | Buffer>): string {
  const stream = masker.stream();
  const out = pieces.map((p) => stream.push(Buffer.isBuffer(p) ? p : Buffer.from(p)));
  out.push(stream.end());
  return Buffer.concat(out).toString('utf8');
}

/** Every way of cutting `text` in two, as byte buffers (so UTF-8 characters get cut too). */
function everySplit(text: string): Buffer[][] {
  const bytes = Buffer.from(text);
  return Array.from({ length: bytes.length + 1 }, (_, i) => [bytes.subarray(0, i), bytes.subarray(i)]);
}

describe('SecretMasker', () => {
  it('is null when there is nothing to mask', () => {
    expect(SecretMasker.of([])).toBeNull();
    expect(SecretMasker.of([''])).toBeNull();
  });

  it('masks a secret printed whole, in a line and in a stream', () => {
    const masker = SecretMasker.of([SECRET])!;
    expect(masker.line(`token=${SECRET} and again ${SECRET}`)).toBe(`token=${MASK} and again ${MASK}`);
    expect(streamed(masker, [`token=${SECRET}\n`])).toBe(`token=${MASK}\n`);
  });

  it('masks a secret split across two writes, wherever the cut falls', () => {
    const masker = SecretMasker.of([SECRET])!;
    for (const pieces of everySplit(`before ${SECRET} after\n`)) {
      expect(streamed(masker, pieces)).toBe(`before ${MASK} after\n`);
    }
  });

  it('masks a secret delivered one byte at a time', () => {
    const masker = SecretMasker.of([SECRET])!;
    const bytes = Buffer.from(`x${SECRET}y${SECRET}`);
    expect(streamed(masker, [...bytes].map((b) => Buffer.from([b])))).toBe(`x${MASK}y${MASK}`);
  });

  it('masks the whole of a longer secret that another secret is a prefix of', () => {
    const masker = SecretMasker.of([SECRET, LONGER])!;
    expect(masker.line(`a ${LONGER} b ${SECRET} c`)).toBe(`a ${MASK} b ${MASK} c`);
    for (const pieces of everySplit(`a ${LONGER} b ${SECRET}`)) {
      const out = streamed(masker, pieces);
      expect(out).toBe(`a ${MASK} b ${MASK}`);
      expect(out).not.toContain('and-more');
    }
    // The order the secrets are given in does not matter.
    expect(SecretMasker.of([LONGER, SECRET])!.line(LONGER)).toBe(MASK);
  });

  it('masks base64, alone and inside a longer encoded string at every alignment', () => {
    const masker = SecretMasker.of([SECRET])!;
    expect(masker.line(Buffer.from(SECRET).toString('base64'))).toBe(MASK);
    for (const prefix of ['', 'u', 'us', 'user:', 'Authorization: Basic x']) {
      for (const suffix of ['', '!', '\n--']) {
        const encoded = Buffer.from(prefix + SECRET + suffix).toString('base64');
        const masked = masker.line(`Basic ${encoded}`);
        expect(masked).toContain(MASK);
        // What remains visible cannot be decoded back into the secret.
        expect(Buffer.from(masked.replace(MASK, ''), 'base64').toString('latin1')).not.toContain(SECRET.slice(2, -2));
      }
    }
    const urlSafe = Buffer.from(`??>${SECRET}`).toString('base64url');
    expect(masker.line(urlSafe)).toContain(MASK);
  });

  it('masks URL-encoded and JSON-escaped forms of a secret with special characters', () => {
    const secret = 'p@ss w/rd "quoted" & more';
    const masker = SecretMasker.of([secret])!;
    expect(masker.line(`https://u:${encodeURIComponent(secret)}@host/`)).toBe(`https://u:${MASK}@host/`);
    expect(masker.line(`q=${new URLSearchParams({ q: secret }).toString().slice(2)}`)).toBe(`q=${MASK}`);
    expect(masker.line(`q=${encodeURIComponent(secret).toLowerCase()}`)).toBe(`q=${MASK}`);
    expect(masker.line(JSON.stringify({ password: secret }))).toBe(`{"password":"${MASK}"}`);
  });

  it('masks a secret with a quote as `set -x` prints it', () => {
    const secret = "it's-a-secret";
    const masker = SecretMasker.of([secret])!;
    expect(masker.line(`+ echo 'it'\\''s-a-secret'`)).toBe(`+ echo '${MASK}'`);
    expect(masker.line(`+ echo 'it'"'"'s-a-secret'`)).toBe(`+ echo '${MASK}'`);
  });

  it('masks each line of a multi-line secret and the whole value across a stream', () => {
    const pem = '-----BEGIN KEY-----\nAAAABBBBCCCC\nDDDDEEEE\n-----END KEY-----';
    const masker = SecretMasker.of([pem])!;
    expect(masker.multiline).toBe(true);
    expect(masker.line('DDDDEEEE')).toBe(MASK);
    for (const pieces of everySplit(`key:\n${pem}\ndone\n`)) {
      const out = streamed(masker, pieces);
      expect(out).toBe(`key:\n${MASK}\ndone\n`);
    }
  });

  it('masks secrets with multi-byte characters when a chunk cuts a character in two', () => {
    const secret = 'пароль-🔑-секрет';
    const masker = SecretMasker.of([secret])!;
    for (const pieces of everySplit(`é ${secret} ü\n`)) expect(streamed(masker, pieces)).toBe(`é ${MASK} ü\n`);
  });

  it('passes other output through byte for byte, including invalid UTF-8', () => {
    const masker = SecretMasker.of([SECRET])!;
    const raw = Buffer.concat([Buffer.from('line one\n'), Buffer.from([0xff, 0xfe, 0x00, 0x80]), Buffer.from('\nend')]);
    const stream = masker.stream();
    expect(Buffer.concat([stream.push(raw), stream.end()])).toEqual(raw);
  });

  it('holds back less than one secret, and nothing after a finished line', () => {
    const masker = SecretMasker.of([SECRET])!;
    const stream = masker.stream();
    const out = stream.push(Buffer.from('x'.repeat(1000)));
    expect(out.length).toBe(1000 - (masker.maxBytes - 1));
    expect(stream.push(Buffer.from('complete line\n')).toString()).toMatch(/complete line\n$/);
  });

  it('derives no short forms that would mask ordinary text', () => {
    for (const form of secretForms('abc')) expect(form).toBe('abc');
    for (const form of secretForms(SECRET)) expect(form.length).toBeGreaterThanOrEqual(4);
  });
});
