import type { NextFunction, Request, RequestHandler, Response } from 'express';
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

  /** Takes `cost` tokens (at most a full bucket) from `key`'s bucket: null when allowed, else the refusal. */
  take(key: string, cost = 1): Refusal | null {
    if (!this.enabled) return null;
    const { rps, burst } = this.settings;
    const need = Math.min(Math.max(1, cost), burst);
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
    if (bucket.tokens >= need) {
      bucket.tokens -= need;
      return null;
    }
    const retryAfterMs = Math.ceil(((need - bucket.tokens) * 1000) / rps);
    return { retryAfterMs, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) };
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
   * The token is verified here and again by the route's own authentication; a verification
   * costs microseconds with a cached key, and only requests that pass are verified twice.
   */
  middleware(verifier: TokenVerifier, shape: 'graphql' | 'rest'): RequestHandler {
    return (req: Request, res: Response, next: NextFunction) => {
      if (!this.enabled) return next();
      void this.keyOf(req, verifier).then((key) => {
        const length = Number(req.headers['content-length'] ?? 0);
        const cost = 1 + (Number.isFinite(length) && length > 0 ? Math.floor(length / BODY_BYTES_PER_TOKEN) : 0);
        const refusal = this.take(key, cost);
        if (refusal === null) return next();
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
    return `ip:${req.ip ?? req.socket.remoteAddress ?? 'unknown'}`;
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
