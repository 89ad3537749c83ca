import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { CHANNELS } from './channels.js';

/** How long a registration lasts unless renewed: a dead API process's interest lapses after it. */
const INTEREST_TTL_MS = 60_000;
/** How often the live registrations are renewed (and re-written, should a row have gone). */
const RENEW_MS = 20_000;

/**
 * Which owners this API process has live subscribers for, registered in `kiln_event_interest`
 * (migrations/Migration20261206000000_dispatch.ts). The event triggers NOTIFY only for owners
 * someone follows: a NOTIFY makes its transaction take a cluster-wide lock at commit, which
 * nobody should pay for when nobody listens.
 *
 * Invariant: `hold(owner)` resolves only once the row is committed, so every change committed
 * after that is notified; a subscriber holds before it reads the state it starts from. Given a
 * start mark, the same transaction notifies it on `CHANNELS.start`: the listener receives
 * notifications in commit order, so whatever arrives before the mark was committed before the
 * subscription began (EventHub drops it for that subscriber).
 */
export class Interest {
  private readonly listener = `${randomUUID()}`;
  private readonly held = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: (message: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.renew(), RENEW_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.held.clear();
    await this.pool.query(`delete from kiln_event_interest where listener = $1`, [this.listener]).catch(() => {});
  }

  /** Follows `owner` until the returned release is called (counted: several subscribers share a row). */
  async hold(owner: string, startMark: string | null = null): Promise<() => void> {
    const count = this.held.get(owner) ?? 0;
    this.held.set(owner, count + 1);
    try {
      // Written on every hold, not only the first: a concurrent first hold may not have committed yet.
      await this.write([owner], startMark);
    } catch (err) {
      this.drop(owner);
      throw err;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.drop(owner);
    };
  }

  /** Re-writes every held owner's row (after a lost connection, rows may have lapsed). */
  async renew(): Promise<void> {
    const owners = [...this.held.keys()];
    if (owners.length === 0) return;
    await this.write(owners).catch((err: Error) => this.log(`event interest: renewal failed: ${err.message}`));
  }

  /**
   * The row is not deleted with the last release: a delete racing a new hold's write could remove
   * the row that hold needs. Unrenewed, it lapses within INTEREST_TTL_MS.
   */
  private drop(owner: string): void {
    const count = (this.held.get(owner) ?? 1) - 1;
    if (count > 0) this.held.set(owner, count);
    else this.held.delete(owner);
  }

  private async write(owners: string[], startMark: string | null = null): Promise<void> {
    await this.pool.query(
      `with lapsed as (delete from kiln_event_interest where expires_at < now() - interval '1 minute'),
       held as (
         insert into kiln_event_interest (listener, owner, expires_at)
         select $1, o, now() + $3 * interval '1 millisecond' from unnest($2::text[]) as o
         on conflict (listener, owner) do update set expires_at = excluded.expires_at)
       select pg_notify($4, $5) where $5::text is not null`,
      [this.listener, owners, INTEREST_TTL_MS, CHANNELS.start, startMark],
    );
  }
}
