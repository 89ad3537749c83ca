import { summarize } from '../lib/stats.js';

/**
 * How the hostile benchmark talks to Kiln: GraphQL over HTTP with the status kept (a refusal is
 * a result here, not an error), and a tally of one user's requests by outcome.
 */

export interface User {
  name: string;
  token: string;
}

export interface Answer {
  status: number;
  ms: number;
  /** Bytes of the body, read whole even when it is too large to keep. */
  bytes: number;
  /** The parsed body when it is under KEEP_BYTES, else null. */
  body: { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: { code?: string } }> } | null;
  /** The start of the body, for messages. */
  head: string;
}

/** Bodies up to this size are parsed; larger ones (the log amplification's) are only counted. */
const KEEP_BYTES = 1 << 20;

/** One HTTP request whose body is read as a stream: counted, kept only when small. */
export async function post(url: string, init: RequestInit): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(url, init);
  let bytes = 0;
  const kept: Uint8Array[] = [];
  for await (const chunk of res.body ?? []) {
    bytes += chunk.length;
    if (bytes <= KEEP_BYTES) kept.push(chunk);
  }
  const text = bytes <= KEEP_BYTES ? Buffer.concat(kept).toString('utf8') : Buffer.concat(kept).toString('utf8', 0, 300);
  let body: Answer['body'] = null;
  if (bytes <= KEEP_BYTES) {
    try {
      body = JSON.parse(text) as Answer['body'];
    } catch {
      // not JSON (a proxy's or the limiter's plain text): `head` says what it was
    }
  }
  return { status: res.status, ms: performance.now() - t0, bytes, body, head: text.slice(0, 300) };
}

/** A request unanswered for this long is given up (the server may be frozen by an attack). */
export const REQUEST_TIMEOUT_MS = 10_000;

/** A GraphQL POST, given up at `signal` (an attack's: the window's end), or else after REQUEST_TIMEOUT_MS. */
export function gql(apiUrl: string, token: string | null, query: string, variables: Record<string, unknown> = {}, signal?: AbortSignal): Promise<Answer> {
  return post(`${apiUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
    signal: signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
}

/** The data of an answer, or an Error naming what came back instead. */
export function dataOf<T>(a: Answer, what: string): T {
  if (a.status === 200 && a.body?.data && !a.body.errors?.length) return a.body.data as T;
  throw new Error(`${what}: ${refusal(a) ?? `HTTP ${a.status}`}`);
}

/** Why an answer refused the request ("HTTP 429: ...", "BAD_USER_INPUT: ..."), or null if it did not. */
export function refusal(a: Answer): string | null {
  const error = a.body?.errors?.[0];
  if (a.status === 200 && !error) return null;
  const message = (error?.message ?? a.head).replace(/\s+/g, ' ').slice(0, 120);
  if (a.status !== 200) return `HTTP ${a.status}: ${message}`;
  return `${error?.extensions?.code ?? 'error'}: ${message}`;
}

/** The attacker's requests by outcome: answered, refused (with the first reason of each kind), cut off, failed. */
export class Tally {
  readonly ms: number[] = [];
  answered = 0;
  /** Still unanswered when the window ended (given up by the benchmark). */
  cutOff = 0;
  /** Network errors: a reset or closed socket. */
  failed = 0;
  bytes = 0;
  readonly refusals = new Map<string, number>();
  firstFailure: string | undefined;

  /** Records one request's outcome; never throws. */
  async time(request: Promise<Answer>): Promise<Answer | null> {
    const t0 = performance.now();
    try {
      const a = await request;
      this.ms.push(a.ms);
      this.bytes += a.bytes;
      const why = refusal(a);
      if (why === null) this.answered++;
      else this.refuse(why);
      return a;
    } catch (err) {
      if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') {
        this.cutOff++;
      } else {
        this.failed++;
        this.firstFailure ??= `${(err as Error).message} ${((err as Error).cause as Error | undefined)?.message ?? ''}`.trim();
        this.ms.push(performance.now() - t0);
      }
      return null;
    }
  }

  /** Counts a refusal; the reason's first 60 characters group it. */
  refuse(why: string): void {
    const key = why.slice(0, 60);
    this.refusals.set(key, (this.refusals.get(key) ?? 0) + 1);
  }

  get sent(): number {
    return this.answered + this.cutOff + this.failed + [...this.refusals.values()].reduce((a, b) => a + b, 0);
  }

  /** "refused 9,800 x HTTP 429: ..." or "no". */
  refusedCell(): string {
    if (this.refusals.size === 0) return this.failed > 0 ? `socket errors x${this.failed}` : 'no';
    return [...this.refusals].map(([why, n]) => `${n.toLocaleString('en')} x ${why}`).join('; ');
  }

  /** "10 sent: 0 answered, 10 cut off; p50 4.9 s, max 9.8 s". */
  requestsCell(): string {
    const s = summarize(this.ms);
    const parts = [`${this.answered} answered`];
    if (this.refusals.size) parts.push(`${[...this.refusals.values()].reduce((a, b) => a + b, 0)} refused`);
    if (this.cutOff) parts.push(`${this.cutOff} unanswered when the window ended`);
    if (this.failed) parts.push(`${this.failed} failed`);
    const time = s.count ? `; p50 ${seconds(s.p50)}, max ${seconds(s.max)}` : '';
    return `${this.sent.toLocaleString('en')} sent: ${parts.join(', ')}${time}`;
  }
}

export const seconds = (msec: number) => (msec >= 1000 ? `${(msec / 1000).toFixed(1)} s` : `${msec.toFixed(0)} ms`);
