/** Encoded forms and parts shorter than this are not masked: they would match ordinary text. */
export const MIN_DERIVED_LENGTH = 4;

/**
 * The texts to mask for one secret, in two kinds. `exact` are matched byte for byte: the value, each
 * line of a multi-line value, URL encoding (JavaScript's encodeURIComponent, form style, and Python's
 * quote(), which keeps `/`; upper and lower case hex), JSON string escaping, and shell quoting as
 * `set -x` prints it. `base64` are standard-alphabet base64 texts, matched with line breaks ignored
 * and the URL-safe alphabet read as the standard one (see SecretMasker), so one form covers
 * `base64` wrapped at 76 columns, `openssl base64` at 64, and base64url.
 */
export function secretFormsByKind(secret: string): { exact: string[]; base64: string[] } {
  if (secret === '') return { exact: [], base64: [] };
  const exact = new Set<string>([secret]);
  const base64 = new Set<string>();
  if (Buffer.byteLength(secret) >= MIN_DERIVED_LENGTH) {
    const derived: string[] = [];
    if (/[\r\n]/.test(secret)) derived.push(...secret.split(/\r?\n/));
    for (const encoded of [encodeURIComponent(secret), pythonQuote(secret)]) derived.push(encoded, lowerHex(encoded));
    derived.push(new URLSearchParams({ x: secret }).toString().slice(2));
    derived.push(JSON.stringify(secret).slice(1, -1));
    if (secret.includes("'")) derived.push(secret.replaceAll("'", `'\\''`), secret.replaceAll("'", `'"'"'`));
    for (const form of derived) if (form.length >= MIN_DERIVED_LENGTH) exact.add(form);
    for (const form of base64Forms(Buffer.from(secret, 'utf8'))) if (form.length >= MIN_DERIVED_LENGTH) base64.add(form);
  }
  return { exact: [...exact], base64: [...base64] };
}

/** Every form of a secret, of both kinds (see secretFormsByKind). */
export function secretForms(secret: string): string[] {
  const { exact, base64 } = secretFormsByKind(secret);
  return [...new Set([...exact, ...base64])];
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

/**
 * Python's urllib.parse.quote(): UTF-8, every byte but letters, digits, `_.-~` and `/` as %XX. That
 * is encodeURIComponent's output with `!'()*` encoded too and `/` left as it is.
 */
function pythonQuote(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replaceAll('%2F', '/');
}

function lowerHex(encoded: string): string {
  return encoded.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase());
}
