import { RateLimiterRes, type RLWrapperTimeouts } from 'rate-limiter-flexible';

/** Tokens of one caller's current window that this process has taken from Postgres and not yet spent. */
interface Lease {
  tokens: number;
  /** The window's end (epoch ms): the lease is worth nothing after it. */
  until: number;
  /** Whether the window had nothing left when the lease was taken: refuse until `until`. */
  spent: boolean;
}

/** Leases are swept when there are this many, at most once a second. */
const SWEEP_AT_SIZE = 10_000;

/**
 * The shared side of a budget (rate-limiter-flexible's Postgres store), bought in blocks: a
 * process that needs tokens of a caller takes up to `block` at once and spends the rest from
 * memory, so one request in `block` costs a round trip, not every one. A block taken is spent
 * for everyone: other processes see it gone. What a process leased and did not spend by the
 * window's end is lost to the caller (at most `block - 1` tokens per process and window), the
 * price of not asking Postgres each time. At the window's edge a process takes only what is left,
 * and gives back what it asked over that, so a caller alone gets every token of the window.
 *
 * Throws the library's RateLimiterRes when over budget (msBeforeNext: until the window ends), and
 * the store's error when Postgres fails.
 */
export class LeasedBudget {
  private readonly leases = new Map<string, Lease>();
  /** The fetch from Postgres under way per caller, settled either way. */
  private readonly fetching = new Map<string, Promise<void>>();
  private lastSweep = 0;

  constructor(
    private readonly store: RLWrapperTimeouts,
    private readonly points: number,
    private readonly block: number,
  ) {}

  async consume(key: string, need: number): Promise<void> {
    // One fetch per caller at a time: requests arriving together wait for it and spend its
    // lease, rather than each leasing a block that the process's own limit may never let spend.
    for (;;) {
      const now = Date.now();
      const lease = this.live(key, now);
      if (lease !== undefined) {
        if (lease.tokens >= need) {
          lease.tokens -= need;
          return;
        }
        if (lease.spent) throw new RateLimiterRes(0, lease.until - now);
      }
      const pending = this.fetching.get(key);
      if (pending === undefined) break;
      await pending;
    }
    const fetched = this.fetch(key, need);
    const settled = fetched.then(
      () => undefined,
      () => undefined,
    );
    this.fetching.set(key, settled);
    try {
      await fetched;
    } finally {
      if (this.fetching.get(key) === settled) this.fetching.delete(key);
    }
  }

  /** Takes `need` tokens from Postgres, and up to a block's worth more as this process's lease. */
  private async fetch(key: string, need: number): Promise<void> {
    const now = Date.now();
    const asked = Math.max(need, this.block);
    let res: RateLimiterRes;
    try {
      res = await this.store.consume(key, asked);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      res = err;
    }
    const before = res.consumedPoints - asked;
    const room = Math.max(0, this.points - before);
    const allowed = room >= need;
    const kept = allowed ? Math.min(asked, room) : 0;
    // Asked over what the window had: given back, so the next request finds it.
    if (kept < asked) void this.store.reward(key, asked - kept).catch(() => undefined);
    this.remember(key, { tokens: allowed ? kept - need : 0, until: now + res.msBeforeNext, spent: before + kept >= this.points }, now);
    if (!allowed) throw new RateLimiterRes(0, res.msBeforeNext);
  }

  /** Charges or gives back tokens beyond any lease (debts, refunds): straight to Postgres. */
  penalty(key: string, points: number): Promise<unknown> {
    return this.store.penalty(key, points);
  }

  reward(key: string, points: number): Promise<unknown> {
    const lease = this.leases.get(key);
    if (lease !== undefined) lease.spent = false;
    return this.store.reward(key, points);
  }

  get(key: string): Promise<RateLimiterRes | null> {
    return this.store.get(key);
  }

  private live(key: string, now: number): Lease | undefined {
    const lease = this.leases.get(key);
    if (lease === undefined || lease.until > now) return lease;
    this.leases.delete(key);
    return undefined;
  }

  /** Records what was leased; two leases of one window (concurrent misses) add up. */
  private remember(key: string, lease: Lease, now: number): void {
    const held = this.live(key, now);
    if (held !== undefined && Math.abs(held.until - lease.until) < 50) {
      held.tokens += lease.tokens;
      held.spent ||= lease.spent;
    } else {
      this.leases.set(key, lease);
    }
    if (this.leases.size >= SWEEP_AT_SIZE && now - this.lastSweep >= 1000) {
      this.lastSweep = now;
      for (const [k, l] of this.leases) if (l.until <= now) this.leases.delete(k);
    }
  }
}
