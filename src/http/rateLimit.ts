import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { GraphQLError } from 'graphql';
import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes, RLWrapperTimeouts } from 'rate-limiter-flexible';
import { addressKey, TrustedProxies } from './clientAddress.js';
import { LeasedBudget } from './leasedBudget.js';

export { addressKey } from './clientAddress.js';

/** How many requests one caller may make (KILN_RATE_LIMIT_RPS, KILN_RATE_LIMIT_BURST). */
export interface RateLimitSettings {
  /** Sustained requests per second per caller; 0 turns rate limiting off. */
  rps: number;
  /** Requests a caller may make at once after a quiet spell (one window's tokens). */
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

/**
 * A request costs one token, plus one per this many bytes of body: parsing a 256 KiB job file
 * blocks the event loop for a few hundred milliseconds, a `{ me { id } }` for microseconds.
 */
export const BODY_BYTES_PER_TOKEN = 64 * 1024;

/** The table of the shared budgets (migrations/Migration20261208020000_rateLimits.ts). */
export const RATE_LIMIT_TABLE = 'rate_limits';
/** A budget check waits this long for Postgres before the process's own count decides alone. */
const STORE_TIMEOUT_MS = 250;
/** After a failed or slow check, the process's own count decides alone for this long. */
const STORE_BACKOFF_MS = 5_000;
/** A process takes a caller's tokens from Postgres in blocks of this fraction of the burst (leasedBudget.ts). */
const LEASE_FRACTION = 1 / 20;

/** Where the shared budgets live, whose forwarded addresses count, where to report trouble. */
export interface RateLimiterOptions {
  /** Postgres pool holding RATE_LIMIT_TABLE; absent: this process's memory only (unit tests). */
  pool?: pg.Pool | null;
  /** KILN_TRUSTED_PROXIES (config.trustedProxies). */
  trustedProxies?: readonly string[];
  log?: (message: string) => void;
}

function refusal(msBeforeNext: number): Refusal {
  const retryAfterMs = Math.max(1, Math.ceil(msBeforeNext));
  return { retryAfterMs, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) };
}

/**
 * Budgets per caller key (docs/design.md#socket-limits), on rate-limiter-flexible: a caller may
 * spend `burst` tokens per window of `burst / rps` seconds, so `rps` a second sustained.
 *
 * Two limiters hold each budget:
 * - This process's memory, checked first. It counts only what reached this process, so what it
 *   refuses is over the budget for sure, and a flood is refused without a round trip: of 10,000
 *   requests at once from one caller, `burst` reach Postgres.
 * - Postgres (RateLimiterPostgres on RATE_LIMIT_TABLE), shared by every API process on the
 *   database: a user behind three replicas has one budget, not three. Tokens are taken from it
 *   in blocks of a twentieth of the burst (LeasedBudget), so one request in ten pays a round trip
 *   at the defaults; a caller whose window is spent there is refused from memory until it ends.
 *
 * Postgres failing, or slower than STORE_TIMEOUT_MS, fails no request: the process's own count
 * decides alone (a limit per process) for STORE_BACKOFF_MS, and says so in the log.
 *
 * A window's end clears its debts: a 1 MiB body in a nearly spent window costs the rest of the
 * window, not more. Memory holds the callers of the current windows only.
 */
export class RateLimiter {
  private readonly local: RateLimiterMemory | null;
  private readonly shared: LeasedBudget | null;
  private storeDownUntil = 0;
  /** Who may speak for a client in `X-Forwarded-For`. */
  readonly proxies: TrustedProxies;
  /** Per request let through by `middleware`: its key, the body bytes seen and the tokens paid. */
  private readonly meters = new WeakMap<object, { key: string; bytes: number; paid: number }>();

  constructor(
    readonly settings: Readonly<RateLimitSettings>,
    private readonly opts: RateLimiterOptions = {},
  ) {
    this.proxies = new TrustedProxies(opts.trustedProxies ?? []);
    const { rps, burst } = settings;
    if (!(rps > 0)) {
      this.local = null;
      this.shared = null;
      return;
    }
    const window = { points: burst, duration: burst / rps };
    this.local = new RateLimiterMemory({ ...window, keyPrefix: 'local' });
    if (opts.pool == null) {
      this.shared = null;
      return;
    }
    const store = new RLWrapperTimeouts({
      timeoutMs: STORE_TIMEOUT_MS,
      limiter: new RateLimiterPostgres({
        ...window,
        storeClient: opts.pool,
        storeType: 'pool',
        tableName: RATE_LIMIT_TABLE,
        // Created by the migration: the library never runs DDL at start-up.
        tableCreated: true,
        keyPrefix: 'kiln',
      }),
    });
    this.shared = new LeasedBudget(store, burst, Math.max(1, Math.floor(burst * LEASE_FRACTION)));
  }

  /** Whether requests are limited at all (KILN_RATE_LIMIT_RPS is not 0). */
  get enabled(): boolean {
    return this.local !== null;
  }

  /**
   * Charges `cost` tokens to `key`'s budget: null when allowed, else the refusal. A request is
   * let through when its window holds `cost` tokens, or a whole fresh window when the cost is
   * more than a window holds; either way it pays its whole cost.
   */
  async take(key: string, cost = 1): Promise<Refusal | null> {
    if (this.local === null) return null;
    const full = Math.max(1, cost);
    const need = Math.min(full, this.settings.burst);
    try {
      await this.local.consume(key, need);
      await this.usableStore()
        ?.consume(key, need)
        .catch((err: unknown) => this.storeFailed(err));
    } catch (err) {
      if (err instanceof RateLimiterRes) return refusal(err.msBeforeNext);
      throw err;
    }
    if (full > need) await this.charge(key, full - need);
    return null;
  }

  /**
   * Charges `cost` tokens for work already done (a body read, a socket message parsed), refusing
   * nothing: the window may go into debt, and the caller's next requests wait for it to end.
   */
  async charge(key: string, cost: number): Promise<void> {
    if (this.local === null || !(cost > 0)) return;
    await this.local.penalty(key, cost);
    await this.usableStore()
      ?.penalty(key, cost)
      .catch((err: unknown) => this.storeFailed(err));
  }

  /** Gives back `cost` tokens taken from `key` for something that turned out not to be theirs. */
  async refund(key: string, cost = 1): Promise<void> {
    if (this.local === null) return;
    await this.local.reward(key, cost);
    await this.usableStore()
      ?.reward(key, cost)
      .catch((err: unknown) => this.storeFailed(err));
  }

  /** The tokens left in `key`'s window, negative in debt, as the shared store counts them (tests). */
  async tokens(key: string): Promise<number> {
    if (this.local === null) return Infinity;
    const res = await (this.shared ?? this.local).get(key);
    return this.settings.burst - (res?.consumedPoints ?? 0);
  }

  private usableStore(): LeasedBudget | null {
    return this.shared !== null && Date.now() >= this.storeDownUntil ? this.shared : null;
  }

  /** A refusal from Postgres is the caller's; any other failure is Postgres's, and refuses nobody. */
  private storeFailed(err: unknown): void {
    if (err instanceof RateLimiterRes) throw err;
    this.storeDownUntil = Date.now() + STORE_BACKOFF_MS;
    const why = err instanceof Error ? err.message : String(err);
    this.opts.log?.(`rate limits: the shared budgets in Postgres failed (${why}); this process counts alone for ${STORE_BACKOFF_MS / 1000} s`);
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

  /** The bucket key of a client without an identity yet: its address (behind trusted proxies, the forwarded one). */
  addressKeyOf(req: { socket: { remoteAddress?: string }; headers: Record<string, string | string[] | undefined> }): string {
    return addressKey(this.proxies.clientOf(req.socket.remoteAddress, req.headers['x-forwarded-for']));
  }

  /**
   * Express middleware for one surface: a caller `subOf` names (a valid token or session) is
   * counted by its `sub`, any other request by its client address (it is refused with 401 further
   * on, but its bad tokens still cost a verification each). Over the limit: 429 with `Retry-After` and a body
   * in the surface's error shape, before the body is even read.
   *
   * A declared `Content-Length` is charged up front (at most a full window); the bytes actually
   * read are charged as they arrive, as debt beyond that: a chunked body, which declares no
   * length, costs the same as the same body with one.
   *
   * `subOf` is the route's own authentication (http/requestAuth.ts), which remembers its answer per
   * request, so the route pays nothing more for it.
   */
  middleware(subOf: (req: Request) => Promise<string | null>, shape: 'graphql' | 'rest'): RequestHandler {
    return (req: Request, res: Response, next: NextFunction) => {
      if (!this.enabled) return next();
      void this.admit(req, subOf).then((refused) => {
        if (refused === null) return next();
        res.setHeader('Retry-After', String(refused.retryAfterSeconds));
        const message = this.message(refused);
        res
          .status(429)
          .json(
            shape === 'graphql'
              ? { errors: [{ message, extensions: { code: RATE_LIMITED, retryAfterSeconds: refused.retryAfterSeconds } }] }
              : { error: message, code: RATE_LIMITED, retry_after_seconds: refused.retryAfterSeconds },
          );
      }, next);
    };
  }

  /** Takes a request's up-front cost from its caller and meters its body; the refusal if over. */
  private async admit(req: Request, subOf: (req: Request) => Promise<string | null>): Promise<Refusal | null> {
    const key = await this.keyOf(req, subOf);
    const length = Number(req.headers['content-length'] ?? 0);
    const declared = Number.isFinite(length) && length > 0 ? length : 0;
    // A declared length the route may refuse unread (413) costs at most a full window.
    const upFront = Math.min(bodyCost(declared), this.settings.burst);
    const refused = await this.take(key, upFront);
    if (refused === null) this.meterBody(req, key, upFront);
    return refused;
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
      void this.charge(meter.key, cost - meter.paid);
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

  private async keyOf(req: Request, subOf: (req: Request) => Promise<string | null>): Promise<string> {
    try {
      const sub = await subOf(req);
      if (sub !== null) return userKey(sub);
    } catch {
      // An invalid token or ended session is no identity: counted by address like none at all.
    }
    // Tokenless callers behind one proxy or NAT share this bucket; callers with a token never
    // draw from it, and WebSocket upgrades have buckets of their own (websocket.ts).
    return this.addressKeyOf(req);
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
