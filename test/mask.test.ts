import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MASK, SecretMasker, WRAPPED_MIN_COLUMNS, secretForms } from '../src/logs/mask.js';

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
  it('masks the base64 of a long secret wrapped at 76 columns (GNU base64) and at 64 (openssl), every line of it', () => {
    const long = `ghp_${randomBytes(600).toString('base64url')}`;
    const masker = SecretMasker.of([long])!;
    for (const prefix of ['', 'u', 'us', 'user:']) {
      for (const [width, eol] of [[76, '\n'], [64, '\n'], [76, '\r\n']] as const) {
        const encoded = Buffer.from(prefix + long).toString('base64');
        const wrapped = encoded.replace(new RegExp(`(.{${width}})`, 'g'), `$1${eol}`) + eol;
        const lines = wrapped.split(eol).length;
        for (const pieces of [[wrapped], everySplit(wrapped)[Math.floor(wrapped.length / 2)]!, [...Buffer.from(wrapped)].map((b) => Buffer.from([b]))]) {
          const out = streamed(masker, pieces);
          // Every line is kept; what is left visible is the prefix's encoding and the last group's padding.
          expect(out.split(eol).length).toBe(lines);
          expect(out).toContain(MASK);
          const visible = out.split(eol).join('').split(MASK).join('');
          expect(visible.length).toBeLessThanOrEqual(Math.ceil((prefix.length * 4) / 3) + 4);
        }
      }
    }
    // base64url, wrapped too.
    const url = Buffer.from(long).toString('base64url').replace(/(.{76})/g, '$1\n');
    expect(masker.line(url).replaceAll('\n', '').replaceAll(MASK, '')).toBe('');
  });

  it('does not hold a finished ordinary line back, however many secrets, but holds a wrapped base64 line', () => {
    const secrets = Array.from({ length: 200 }, () => randomBytes(48).toString('base64'));
    const masker = SecretMasker.of(secrets)!;
    const stream = masker.stream();
    for (const line of ['compiling package a\n', 'ok  \tgithub.com/x/y 0.01s\n', `${'Q'.repeat(WRAPPED_MIN_COLUMNS - 1)}\n`]) {
      expect(stream.push(Buffer.from(line)).toString().endsWith(line)).toBe(true);
    }
    // A line that may be the first of a wrapped secret waits for the next one.
    const b64 = Buffer.from(`user:${secrets[3]}`).toString('base64');
    const first = b64.slice(0, 76);
    expect(stream.push(Buffer.from(`${first}\n`)).toString()).not.toContain('\n');
    const rest = Buffer.concat([stream.push(Buffer.from(`${b64.slice(76)}\n`)), stream.end()]).toString();
    expect(rest).toContain(MASK);
  });

  it("masks Python's quote(), which keeps / unencoded", () => {
    const secret = "a/b c!'()*~é-_.x";
    const masker = SecretMasker.of([secret])!;
    // urllib.parse.quote(secret), as Python 3 prints it.
    expect(masker.line('https://h/?p=a/b%20c%21%27%28%29%2A~%C3%A9-_.x&q=1')).toBe(`https://h/?p=${MASK}&q=1`);
  });

  it('masks the union of overlapping secrets, and adjacent ones each', () => {
    const masker = SecretMasker.of(['abcdef-1', 'def-1-ghij'])!;
    expect(masker.line('x abcdef-1-ghij y')).toBe(`x ${MASK} y`);
    expect(masker.line('abcdef-1abcdef-1')).toBe(`${MASK}${MASK}`);
  });

  it('masks each of 1,000 secrets of 1 KiB in a stream cut anywhere', () => {
    const secrets = Array.from({ length: 1000 }, () => randomBytes(768).toString('base64'));
    const masker = SecretMasker.of(secrets)!;
    const text = secrets.map((s, i) => `${i}: ${s} ${i % 3 === 0 ? Buffer.from(s).toString('base64') : ''}\n`).join('');
    const bytes = Buffer.from(text);
    const pieces: Buffer[] = [];
    for (let at = 0; at < bytes.length; ) {
      const n = 1 + Math.floor(Math.random() * 5000);
      pieces.push(bytes.subarray(at, at + n));
      at += n;
    }
    const out = streamed(masker, pieces).split('\n');
    expect(out).toHaveLength(1001);
    for (let i = 0; i < 1000; i++) expect(out[i]).toBe(`${i}: ${MASK} ${i % 3 === 0 ? MASK : ''}`);
  });

  it('stays linear and bounded on output made to match again and again', () => {
    // Secrets that are periodic, and nearly so: a regex or a naive search would rescan each start.
    const secrets = [...Array.from({ length: 100 }, (_, i) => `${'a'.repeat(200 + i)}b`), 'aaaa'];
    const masker = SecretMasker.of(secrets)!;
    const stream = masker.stream();
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    const started = performance.now();
    let out = 0;
    for (let i = 0; i < 16; i++) out += stream.push(chunk).length;
    out += stream.end().length;
    // 16 MiB of 'a' is one run of matches: one MASK, and nothing held back in between.
    expect(out).toBe(MASK.length);
    // Generous for a loaded machine; a quadratic scan would take hours.
    expect(performance.now() - started).toBeLessThan(20_000);
  });
});
