/** What a secret is replaced with in logs. */
export const MASK = '***';

/** Encoded forms and parts shorter than this are not masked: they would match ordinary text. */
export const MIN_DERIVED_LENGTH = 4;

/**
 * The texts to mask for one secret: the value itself and the forms a build is likely to print
 * it in — each line of a multi-line value, base64 (standard and URL-safe, alone and at any of the
 * three alignments inside a longer encoded string), URL encoding (percent and form style, upper
 * and lower case hex), JSON string escaping, and shell quoting as `set -x` prints it.
 */
export function secretForms(secret: string): string[] {
  if (secret === '') return [];
  const forms = new Set<string>([secret]);
  if (Buffer.byteLength(secret) >= MIN_DERIVED_LENGTH) {
    const derived: string[] = [];
    if (/[\r\n]/.test(secret)) derived.push(...secret.split(/\r?\n/));
    const bytes = Buffer.from(secret, 'utf8');
    for (const b64 of base64Forms(bytes)) derived.push(b64, b64.replaceAll('+', '-').replaceAll('/', '_'));
    const uri = encodeURIComponent(secret);
    derived.push(uri, uri.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()));
    derived.push(new URLSearchParams({ x: secret }).toString().slice(2));
    derived.push(JSON.stringify(secret).slice(1, -1));
    if (secret.includes("'")) derived.push(secret.replaceAll("'", `'\\''`), secret.replaceAll("'", `'"'"'`));
    for (const form of derived) if (form.length >= MIN_DERIVED_LENGTH) forms.add(form);
  }
  return [...forms];
}

/**
 * Base64 of `bytes` alone (padded and not), and the part of its encoding that does not depend on
 * the bytes around it when it sits inside a longer encoded string, for each of the three offsets
 * it can start at (`base64("user:" + secret)` contains one of them).
 */
function base64Forms(bytes: Buffer): string[] {
  const forms = [bytes.toString('base64'), bytes.toString('base64').replace(/=+$/, '')];
  for (const offset of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64').replace(/=+$/, '');
    // Leading characters carry bits of the unknown bytes before; a trailing partial group those after.
    const head = [0, 2, 3][offset]!;
    const tail = (offset + bytes.length) % 3 === 0 ? 0 : 1;
    const core = encoded.slice(head, encoded.length - tail);
    if (core.length > 0) forms.push(core);
  }
  return forms;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Longest first, so that at any position the longest form wins (a secret that is a prefix of another). */
function alternation(forms: string[]): RegExp {
  return new RegExp([...forms].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g');
}

/**
 * Masks an execution's secrets in its output. Built once per execution from the secret values;
 * `stream()` masks raw bytes as they arrive (a secret split across writes is still found), `line()`
 * masks one whole line (Kiln's own messages).
 */
export class SecretMasker {
  /** The forms as the bytes of their UTF-8 encoding, one char per byte ('latin1'). */
  private readonly byteForms: RegExp;
  private readonly textForms: RegExp;
  /** Longest form in bytes: the most a stream must hold back. */
  readonly maxBytes: number;
  /** Whether a form contains a newline, so a match may cross lines. */
  readonly multiline: boolean;

  private constructor(forms: string[]) {
    const bytes = forms.map((f) => Buffer.from(f, 'utf8').toString('latin1'));
    this.byteForms = alternation(bytes);
    this.textForms = alternation(forms);
    this.maxBytes = Math.max(...bytes.map((b) => b.length));
    this.multiline = forms.some((f) => f.includes('\n'));
  }

  /** A masker for these secret values, or null when there is nothing to mask. */
  static of(secrets: Iterable<string>): SecretMasker | null {
    const forms = new Set<string>();
    for (const secret of secrets) for (const form of secretForms(secret)) forms.add(form);
    return forms.size === 0 ? null : new SecretMasker([...forms]);
  }

  line(text: string): string {
    return text.replace(this.textForms, MASK);
  }

  /** A masking state for one output stream. */
  stream(): MaskingStream {
    return new MaskingStream(this.byteForms, this.maxBytes, this.multiline);
  }
}

/**
 * Masks one byte stream chunk by chunk. It holds back at most `maxBytes - 1` bytes that could be
 * the beginning of a secret until the next chunk (or `end`) decides, so memory stays bounded and
 * nothing unmasked ever leaves it. Works on bytes, so a chunk boundary inside a UTF-8 character
 * changes nothing.
 */
export class MaskingStream {
  private held = '';

  constructor(
    private readonly forms: RegExp,
    private readonly maxBytes: number,
    private readonly multiline: boolean,
  ) {}

  push(chunk: Buffer): Buffer {
    return Buffer.from(this.scan(this.held + chunk.toString('latin1'), false), 'latin1');
  }

  /** Releases what was held back, masked; the stream is reusable afterwards. */
  end(): Buffer {
    return Buffer.from(this.scan(this.held, true), 'latin1');
  }

  private scan(text: string, final: boolean): string {
    // A match starting before `decided` fits entirely in `text`, so the longest form at that
    // position is known. Without multi-line forms no match crosses a newline, so everything up to
    // the last one is decided too (a finished line is never held back).
    let decided = final ? text.length : text.length - (this.maxBytes - 1);
    if (!final && !this.multiline) decided = Math.max(decided, text.lastIndexOf('\n') + 1);
    let out = '';
    let pos = 0;
    for (;;) {
      this.forms.lastIndex = pos;
      const match = this.forms.exec(text);
      if (match === null || match.index >= decided) break;
      out += text.slice(pos, match.index) + MASK;
      pos = match.index + match[0].length;
    }
    const keep = Math.max(pos, decided);
    out += text.slice(pos, keep);
    this.held = text.slice(keep);
    return out;
  }
}
