import { ByteAutomaton } from './ByteAutomaton.js';
import { runAtOnce, runInSlices } from '../util/slices.js';
import { secretFormsByKind } from './secretForms.js';

export { MIN_DERIVED_LENGTH, secretForms } from './secretForms.js';

/** What a secret is replaced with in logs. */
export const MASK = '***';
const MASK_BYTES = Buffer.from(MASK);
/** Longest stretch of a masker's build between two turns of the event loop. */
const BUILD_SLICE_MS = 10;

/**
 * Masks an execution's secrets in its output (docs/design.md#masking). Built once per execution
 * from the secret values: two Aho-Corasick automata over bytes hold every form of every secret, so
 * masking costs the same per byte whatever the number of secrets. `stream()` masks raw bytes as
 * they arrive (a secret split across writes is still found), `line()` masks one text (Kiln's own
 * messages and errors).
 */
export class SecretMasker {
  /** Longest form in bytes. */
  readonly maxBytes: number;
  /** Whether a form contains a newline, so a match may cross lines. */
  readonly multiline: boolean;

  private constructor(
    /** The forms matched byte for byte (UTF-8). */
    private readonly exact: ByteAutomaton,
    /** The base64 forms, matched with line breaks skipped and base64url read as base64; null when none. */
    private readonly base64: ByteAutomaton | null,
    multiline: boolean,
  ) {
    this.maxBytes = Math.max(exact.maxLength, base64?.maxLength ?? 0);
    this.multiline = multiline;
  }

  /** A masker for these secret values, or null when there is nothing to mask; built at once (tests, few secrets). */
  static of(secrets: Iterable<string>): SecretMasker | null {
    return runAtOnce(SecretMasker.build(secrets));
  }

  /**
   * The same, built in slices of at most BUILD_SLICE_MS with the event loop let through between
   * them: what a run uses, since a thousand secrets of a KiB take about a second to build and the
   * worker's loop renews its leases (docs/design.md#masking).
   */
  static inSlices(secrets: Iterable<string>): Promise<SecretMasker | null> {
    return runInSlices(SecretMasker.build(secrets), BUILD_SLICE_MS);
  }

  private static *build(secrets: Iterable<string>): Generator<void, SecretMasker | null> {
    const exact = new Set<string>();
    const base64 = new Set<string>();
    for (const secret of secrets) {
      const forms = secretFormsByKind(secret);
      for (const f of forms.exact) exact.add(f);
      for (const f of forms.base64) base64.add(f);
      yield;
    }
    if (exact.size === 0) return null;
    const bytes = (forms: Set<string>) => [...forms].map((f) => Buffer.from(f, 'utf8'));
    const exactAutomaton = yield* ByteAutomaton.build(bytes(exact));
    const base64Automaton = base64.size > 0 ? yield* ByteAutomaton.build(bytes(base64)) : null;
    return new SecretMasker(exactAutomaton, base64Automaton, [...exact].some((f) => f.includes('\n')));
  }

  line(text: string): string {
    const stream = this.stream();
    const head = stream.push(Buffer.from(text, 'utf8'));
    return Buffer.concat([head, stream.end()]).toString('utf8');
  }

  /** A masking state for one output stream. */
  stream(): MaskingStream {
    return new MaskingStream(this.exact, this.base64, this.maxBytes);
  }
}

/**
 * A wrapped line of base64 ends with at least this many base64 characters (GNU base64 wraps at 76,
 * openssl and PEM at 64): only after such a line does a base64 match carry on past the line
 * break. Any other line break ends it, so ordinary lines are never held back for it.
 */
export const WRAPPED_MIN_COLUMNS = 48;
/** Line-break bytes in a row a base64 match carries on across (`\r\n`). */
const MAX_BREAKS = 2;

const NEWLINE = 10;
const RETURN = 13;
/** base64url's `-` and `_` read as base64's `+` and `/`. */
const CANONICAL = Uint8Array.from({ length: 256 }, (_, b) => (b === 45 ? 43 : b === 95 ? 47 : b));
const BASE64_CHAR = Uint8Array.from({ length: 256 }, (_, b) => (/[A-Za-z0-9+/=_-]/.test(String.fromCharCode(b)) ? 1 : 0));
const EMPTY = Buffer.alloc(0);

/**
 * Bytes covered by matches that overlap, let out as one MASK. `keepBreaks` unless a match in it
 * spans a line break of the output as it is (a multi-line secret: the whole value becomes one
 * MASK); otherwise (base64 wrapped over lines) each line keeps its break and gets a MASK.
 */
interface Run {
  start: number;
  end: number;
  collapse: boolean;
  /** The next covered byte that is not a line break starts a MASK. */
  maskDue: boolean;
}

/**
 * Masks one byte stream chunk by chunk, in time linear in its length. It holds back only what may
 * still turn out to be part of a secret (a match in progress: at most one form, plus the line
 * breaks of a wrapped base64 one) and, within an unfinished line, up to `maxBytes - 1` bytes; so
 * memory stays bounded and nothing unmasked ever leaves it. Works on bytes, so a chunk boundary
 * inside a UTF-8 character changes nothing.
 */
export class MaskingStream {
  private exactState = 0;
  private base64State = 0;
  /** Bytes read so far; the next byte's position. */
  private pos = 0;
  /** The first position not let out yet: `held` holds the bytes from there to `pos`. */
  private emitted = 0;
  private held: Buffer = EMPTY;
  private lastBreak = -1;
  /** Line-break bytes in a row, and base64 characters in a row, just read. */
  private breaks = 0;
  private base64Run = 0;
  /** Bytes the base64 automaton read (line breaks are skipped), and where each was in the stream (a ring). */
  private base64Read = 0;
  private readonly base64At: Float64Array;
  /** Covered byte ranges not let out in full yet, in order, disjoint. */
  private runs: Run[] = [];

  constructor(
    private readonly exact: ByteAutomaton,
    private readonly base64: ByteAutomaton | null,
    private readonly maxBytes: number,
  ) {
    // A power of two, indexed with a mask: positions are integers below 2^53, whose low bits `&` keeps.
    this.base64At = new Float64Array(2 ** Math.ceil(Math.log2(Math.max(1, base64?.maxLength ?? 0))));
  }

  push(chunk: Buffer): Buffer {
    this.scan(chunk);
    this.held = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    // Within an unfinished line, hold back what the regex-based masker did (the line splitter
    // holds that line anyway); never past what a match in progress may still cover.
    const lineBound = Math.max(this.pos - (this.maxBytes - 1), this.lastBreak + 1);
    return this.release(Math.min(this.undecided(), lineBound));
  }

  /** Releases what was held back, masked; the stream is reusable afterwards. */
  end(): Buffer {
    const out = this.release(this.pos);
    this.exactState = 0;
    this.base64State = 0;
    this.breaks = 0;
    this.base64Run = 0;
    return out;
  }

  /** Feeds the chunk to both automata and records the ranges their matches cover. */
  private scan(chunk: Buffer): void {
    const { exact, base64, base64At } = this;
    const ring = base64At.length - 1;
    // The hot loop works on locals, written back at the end.
    let { exactState: s, base64State: t, lastBreak, breaks, base64Run, base64Read } = this;
    for (let i = 0, p = this.pos; i < chunk.length; i++, p++) {
      const byte = chunk[i]!;
      const isBreak = byte === NEWLINE || byte === RETURN;
      if (isBreak) lastBreak = p;
      s = exact.next(s, byte);
      const len = exact.out[s]!;
      if (len > 0) this.cover(p + 1 - len, p + 1, lastBreak > p - len);
      if (base64 === null) continue;
      if (isBreak) {
        // A match carries on past the break of a wrapped line only (see WRAPPED_MIN_COLUMNS).
        if (++breaks > MAX_BREAKS || (breaks === 1 && base64Run < WRAPPED_MIN_COLUMNS)) t = 0;
        base64Run = 0;
        continue;
      }
      breaks = 0;
      base64Run = BASE64_CHAR[byte] ? base64Run + 1 : 0;
      t = base64.next(t, CANONICAL[byte]!);
      base64At[base64Read & ring] = p;
      base64Read++;
      const l = base64.out[t]!;
      if (l > 0) this.cover(base64At[(base64Read - l) & ring]!, p + 1, false);
    }
    Object.assign(this, { exactState: s, base64State: t, lastBreak, breaks, base64Run, base64Read });
    this.pos += chunk.length;
  }

  /** The first position a match still in progress may cover: everything before it is decided. */
  private undecided(): number {
    let bound = this.pos - this.exact.depth[this.exactState]!;
    const depth = this.base64?.depth[this.base64State] ?? 0;
    if (depth > 0) bound = Math.min(bound, this.base64At[(this.base64Read - depth) & (this.base64At.length - 1)]!);
    return bound;
  }

  /** Adds the range [start, end) to the covered runs, merging those it overlaps. */
  private cover(start: number, end: number, collapse: boolean): void {
    const runs = this.runs;
    const last = runs[runs.length - 1];
    // Runs are disjoint and in order, so only the last can overlap unless the range reaches back further.
    if (last === undefined || start >= last.end) {
      runs.push({ start, end, collapse, maskDue: true });
      return;
    }
    if (end > last.end) last.end = end;
    if (collapse) last.collapse = true;
    if (start < last.start) last.start = start;
    for (let before = runs[runs.length - 2]; before !== undefined && before.end > last.start; before = runs[runs.length - 2]) {
      runs.splice(runs.length - 2, 1);
      last.start = Math.min(last.start, before.start);
      last.collapse ||= before.collapse;
      last.maskDue = before.maskDue;
    }
  }

  /** Lets out everything before `decided`, covered runs as MASK. */
  private release(decided: number): Buffer {
    const out: Buffer[] = [];
    const base = this.emitted;
    const held = this.held;
    let at = this.emitted;
    while (at < decided) {
      const run = this.runs[0];
      if (run === undefined || run.start >= decided) {
        out.push(held.subarray(at - base, decided - base));
        at = decided;
        break;
      }
      if (at < run.start) out.push(held.subarray(at - base, run.start - base));
      at = Math.max(at, run.start);
      const upto = Math.min(run.end, decided);
      maskRange(run, held.subarray(at - base, upto - base), out);
      at = upto;
      // No later match can reach a run that ends before `decided`.
      if (upto === run.end) this.runs.shift();
    }
    this.emitted = at;
    this.held = held.subarray(at - base);
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

/** Lets out the covered bytes `bytes` of `run`: a MASK per line, or one for the run if it collapses. */
function maskRange(run: Run, bytes: Buffer, out: Buffer[]): void {
  for (const byte of bytes) {
    if (!run.collapse && (byte === NEWLINE || byte === RETURN)) {
      out.push(Buffer.from([byte]));
      run.maskDue = true;
    } else if (run.maskDue) {
      out.push(MASK_BYTES);
      run.maskDue = false;
    }
  }
}
