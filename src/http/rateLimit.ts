import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { isIPv4, isIPv6 } from 'node:net';
import { GraphQLError } from 'graphql';
import { bearerToken } from '../auth/token.js';
import type { TokenVerifier } from '../auth/types.js';

/** How many requests one caller may make (KILN_RATE_LIMIT_RPS, KILN_RATE_LIMIT_BURST). */
export interface RateLimitSettings {
  /** Sustained requests per second per caller; 0 turns rate limiting off. */
  rps: number;
  /** Requests a caller may make at once after a quiet spell (the bucket's size). */
  burst: number;
}

/** The `extensions.code` of a refused request, over HTTP and over the socket. */
export const RATE_LIMITED = 'RATE_LIMITED';

/** A refusal: how long until the caller's next request would be allowed. */
export interface Refusal {
  retryAfterMs: number;
  /** Whole seconds for `Retry-After` and messages (at least 1). */
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (performance.now()). */
  at: number;
}

/**
 * A request costs one token, plus one per this many bytes of body: parsing a 256 KiB job file
 * blocks the event loop for a few hundred milliseconds, a `{ me { id } }` for microseconds.
 */
export const BODY_BYTES_PER_TOKEN = 64 * 1024;

/** Buckets idle for this long (and so full again) are forgotten at the next sweep. */
const SWEEP_EVERY_MS = 60_000;
/** A sweep also runs as soon as this many callers are tracked (an attacker rotating addresses). */
const SWEEP_AT_SIZE = 50_000;

/**
 * Token buckets, one per caller key: each holds up to `burst` tokens, refilled at `rps` per
 * second; a request takes one, or is refused with the time until one is back.
 *
 * The buckets live in this process's memory: with N API processes behind a load balancer a
 * caller may make up to N times the configured rate. That is the price of keeping the check
 * free of any round trip to Postgres; the limit is there to keep one caller from starving the
 * others of a process, which a per-process limit does.
 *
 * Memory stays bounded by the callers seen lately: a bucket that has refilled completely is the
 * same as no bucket, so sweeps drop those (every minute, or when many callers are tracked).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  /** Per request let through by `middleware`: its key, the body bytes seen and the tokens paid. */
  private readonly meters = new WeakMap<object, { key: string; bytes: number; paid: number }>();
  private lastSweep: number;

  constructor(
    readonly settings: Readonly<RateLimitSettings>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.lastSweep = now();
  }

  /** Whether requests are limited at all (KILN_RATE_LIMIT_RPS is not 0). */
  get enabled(): boolean {
    return this.settings.rps > 0;
  }

  /**
   * Charges `cost` tokens to `key`'s bucket: null when allowed, else the refusal (nothing is
   * charged). A request is let through when the bucket holds `cost` tokens, or is full when the
   * cost is more than a full bucket; either way it pays its whole cost, which may leave the
   * bucket in debt (negative) until enough has refilled.
   */
  take(key: string, cost = 1): Refusal | null {
    if (!this.enabled) return null;
    const { rps, burst } = this.settings;
    const full = Math.max(1, cost);
    const need = Math.min(full, burst);
    const bucket = this.refilled(key);
    if (bucket.tokens >= need) {
      bucket.tokens -= full;
      return null;
    }
    const retryAfterMs = Math.ceil(((need - bucket.tokens) * 1000) / rps);
    return { retryAfterMs, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) };
  }

  /**
   * Charges `cost` tokens for work already done (a body read, a socket message parsed), refusing
   * nothing: the bucket may go into debt, and the caller's next requests wait for it to refill.
   */
  charge(key: string, cost: number): void {
    if (!this.enabled || !(cost > 0)) return;
    this.refilled(key).tokens -= cost;
  }

  /** The tokens left in `key`'s bucket, negative in debt (for tests). */
  tokens(key: string): number {
    return this.enabled ? this.refilled(key).tokens : Infinity;
  }

  /** `key`'s bucket brought up to date (a full one when the key is new). */
  private refilled(key: string): Bucket {
    const { rps, burst } = this.settings;
    const now = this.now();
    const sinceSweep = now - this.lastSweep;
    // At most one sweep a second however many callers: a sweep is O(callers).
    if (sinceSweep >= SWEEP_EVERY_MS || (this.buckets.size >= SWEEP_AT_SIZE && sinceSweep >= 1000)) this.sweep(now);
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: burst, at: now };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * rps) / 1000);
      bucket.at = now;
    }
    return bucket;
  }

  /** How many callers are tracked (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  /** The message of a refusal, the same on every transport. */
  message(refusal: Refusal): string {
    const { rps, burst } = this.settings;
    return `rate limit exceeded: at most ${rps} requests per second, in bursts of up to ${burst}; retry in ${refusal.retryAfterSeconds} s`;
  }

  /** The GraphQL error of a refusal (graphql-ws operations; HTTP uses the same shape). */
  graphqlError(refusal: Refusal): GraphQLError {
    return new GraphQLError(this.message(refusal), { extensions: { code: RATE_LIMITED, retryAfterSeconds: refusal.retryAfterSeconds } });
  }

  /**
   * Express middleware for one surface: a caller with a valid token is counted by its `sub`,
   * any other request by its client address (it is refused with 401 further on, but its bad
   * tokens still cost a verification each). Over the limit: 429 with `Retry-After` and a body
   * in the surface's error shape, before the body is even read.
   *
   * A declared `Content-Length` is charged up front (at most a full bucket); the bytes actually
   * read are charged as they arrive, as debt beyond that: a chunked body, which declares no
   * length, costs the same as the same body with one.
   *
   * The token is verified here and again by the route's own authentication; the verifier
   * remembers tokens that passed (auth/verifier.ts rememberVerified), so the second check, and
   * every later request with the same token, costs a hash instead of a signature check.
   */
  middleware(verifier: TokenVerifier, shape: 'graphql' | 'rest'): RequestHandler {
    return (req: Request, res: Response, next: NextFunction) => {
      if (!this.enabled) return next();
      void this.keyOf(req, verifier).then((key) => {
        const length = Number(req.headers['content-length'] ?? 0);
        const declared = Number.isFinite(length) && length > 0 ? length : 0;
        // A declared length the route may refuse unread (413) costs at most a full bucket.
        const upFront = Math.min(bodyCost(declared), this.settings.burst);
        const refusal = this.take(key, upFront);
        if (refusal === null) {
          this.meterBody(req, key, upFront);
          return next();
        }
        res.setHeader('Retry-After', String(refusal.retryAfterSeconds));
        const message = this.message(refusal);
        res
          .status(429)
          .json(
            shape === 'graphql'
              ? { errors: [{ message, extensions: { code: RATE_LIMITED, retryAfterSeconds: refusal.retryAfterSeconds } }] }
              : { error: message, code: RATE_LIMITED, retry_after_seconds: refusal.retryAfterSeconds },
          );
      }, next);
    };
  }

  /**
   * Charges a request let through by `middleware` for `bytes` of body, if that is more than it
   * has paid for: the body parser of `/graphql` reports the decompressed size here (a gzipped
   * body is read small and parsed large). Requests not counted by `middleware` are ignored.
   */
  chargeBody(req: object, bytes: number): void {
    const meter = this.meters.get(req);
    if (meter === undefined || bytes <= meter.bytes) return;
    meter.bytes = bytes;
    const cost = bodyCost(bytes);
    if (cost > meter.paid) {
      this.charge(meter.key, cost - meter.paid);
      meter.paid = cost;
    }
  }

  /**
   * Counts the body bytes of `req` as they are consumed, whoever reads them (a parser, a route,
   * or Node discarding an unread body). Every chunk a readable stream hands out passes through
   * `emit('data')`, in flowing and paused mode alike; listening for 'data' instead would switch
   * the stream to flowing before the route's parser is attached, and lose the first chunks.
   */
  private meterBody(req: Request, key: string, paid: number): void {
    this.meters.set(req, { key, bytes: 0, paid });
    let read = 0;
    const emit = req.emit;
    const limiter = this;
    req.emit = function (this: Request, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'data') {
        const chunk = args[0];
        read += typeof chunk === 'string' ? Buffer.byteLength(chunk) : ((chunk as { length?: number } | null)?.length ?? 0);
        limiter.chargeBody(req, read);
      }
      return emit.call(this, event, ...args);
    } as Request['emit'];
  }

  private async keyOf(req: Request, verifier: TokenVerifier): Promise<string> {
    const token = bearerToken(req.headers.authorization);
    if (token !== null) {
      try {
        return userKey((await verifier.verify(token)).sub);
      } catch {
        // An invalid token is no identity: counted by address like no token at all.
      }
    }
    // Without `trust proxy` this is the peer's address: behind a reverse proxy, every
    // unauthenticated caller shares the proxy's bucket, which only makes them stricter.
    return addressKey(req.ip ?? req.socket.remoteAddress);
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    const { rps, burst } = this.settings;
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) * rps) / 1000 >= burst) this.buckets.delete(key);
    }
  }
}

/** The bucket key of an authenticated caller, the same over HTTP and the socket. */
export function userKey(sub: string): string {
  return `user:${sub}`;
}

/** What a body or message of `bytes` bytes costs: one token, plus one per BODY_BYTES_PER_TOKEN. */
export function bodyCost(bytes: number): number {
  return 1 + Math.floor(Math.max(0, bytes) / BODY_BYTES_PER_TOKEN);
}

/**
 * The bucket key of a caller without a valid token, by client address, the same over HTTP and
 * the socket. An IPv4 address is one caller (also written IPv4-mapped, `::ffff:a.b.c.d`); an
 * IPv6 caller is its /64, the smallest block a site is given: one host can rotate through the
 * 2^64 addresses of its own /64 at will, and would otherwise get a fresh bucket with each.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'ip:unknown';
  const bare = address.split('%')[0]!;
  if (isIPv4(bare)) return `ip:${bare}`;
  if (!isIPv6(bare)) return `ip:${bare}`;
  const groups = ipv6Groups(bare);
  if (groups === null) return `ip:${bare}`;
  // ::ffff:0:0/96 holds IPv4 addresses, however written (::ffff:7f00:1 is 127.0.0.1).
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `ip:${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  }
  return `ip:${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail split). */
function ipv6Groups(address: string): number[] | null {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const part = (s: string | undefined) => (s === undefined || s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = part(head);
  const right = part(tail);
  const groups = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}
