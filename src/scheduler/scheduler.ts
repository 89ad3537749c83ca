import pg from 'pg';
import type { Log } from '../util/log.js';
import { fireAhead, fireDue, type FireOptions } from './fireDue.js';
import { requeueExpired } from '../executions/requeueExpired.js';

/** Arbitrary constant key of the scheduler leader's session advisory lock ("kiln"). */
const LEADER_LOCK_KEY = 0x6b696c6e;

export interface SchedulerOptions extends FireOptions {
  /** Where the scheduler's own session takes its connection settings (it is not drawn from the pool). */
  pool: pg.Pool;
  /** How often a follower tries to become the leader. */
  followerRetryMs?: number;
  /** How often the leader looks for expired leases. */
  requeueEveryMs?: number;
  /** Longest sleep of the leader even with nothing due (a safety net under the notifications). */
  maxSleepMs?: number;
  /**
   * A statement of the scheduler's session unanswered for this long means the link is gone: the
   * socket is destroyed and the leader steps down at once (default 5 s).
   */
  queryTimeoutMs?: number;
  /**
   * A leader whose session has been silent (idle, no statement) on the server for this long is
   * presumed cut off, and a follower terminates its backend to take over (default 10 s). Must
   * exceed `queryTimeoutMs` plus the leader's longest sleep, so that a cut-off leader has stepped
   * down by its own clock before anyone takes over.
   */
  staleLeaderMs?: number;
  log: Log;
  /** Told how many executions each pass re-queued from expired leases (metrics). */
  onRequeued?: (count: number) => void;
}

/**
 * How far ahead of an instant its pass is prepared (fireAhead): 1.5x the last prepared pass's
 * writing time plus 20 ms, within these bounds.
 */
const AHEAD_MIN_MS = 50;
const AHEAD_MAX_MS = 250;

/**
 * The scheduler's own connection: a plain pg.Client with TCP keepalives on both ends and a
 * timeout on every statement, after which the socket is destroyed (a blackholed link would
 * otherwise leave a statement waiting forever).
 */
class Session {
  broken = false;
  private constructor(
    readonly client: pg.Client,
    private readonly timeoutMs: number,
    private readonly onBroken: (reason: string) => void,
  ) {}

  static async open(pool: pg.Pool, timeoutMs: number, staleMs: number, onBroken: (reason: string) => void, onNotify: () => void): Promise<Session> {
    const client = new pg.Client({
      ...(pool.options as pg.ClientConfig),
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      connectionTimeoutMillis: timeoutMs,
    });
    const s = new Session(client, timeoutMs, onBroken);
    client.on('error', (err) => s.kill(`connection error: ${err.message}`));
    client.on('end', () => s.kill('connection ended'));
    client.on('notification', onNotify);
    try {
      await client.connect();
      // Server side: a backend whose peer vanished (packets dropped, no RST) is found dead in
      // 5 + 3 * 2 s instead of the OS default of hours, which ends the session and frees the
      // leader lock; tcp_user_timeout covers unacknowledged data, which keepalives do not.
      // A transaction left open by a stalled leader is aborted, with its row locks.
      await s.query(
        `set tcp_keepalives_idle = 5; set tcp_keepalives_interval = 2; set tcp_keepalives_count = 3;
         set idle_in_transaction_session_timeout = ${Math.max(1000, Math.floor(staleMs))}; set statement_timeout = ${Math.max(1000, Math.floor(timeoutMs))}`,
      );
      if (Number((await s.query<{ v: string }>('show server_version_num')).rows[0]!.v) >= 120000) await s.query('set tcp_user_timeout = 11000');
    } catch (err) {
      s.kill(`could not open: ${(err as Error).message}`);
      throw err;
    }
    return s;
  }

  /** One statement; unanswered within the timeout (+1 s over statement_timeout), the socket is destroyed and it fails. */
  // biome-ignore lint/suspicious/noExplicitAny: the same default as pg.Pool.query
  async query<R extends pg.QueryResultRow = any>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    if (this.broken) throw new Error('scheduler session is broken');
    const timer = setTimeout(() => this.kill(`no answer from Postgres within ${this.timeoutMs + 1000} ms`), this.timeoutMs + 1000);
    try {
      return await this.client.query<R>(text, params);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Marks the session broken and destroys its socket (ending the backend if the link still works). */
  kill(reason: string): void {
    if (this.broken) return;
    this.broken = true;
    this.onBroken(reason);
    (this.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    this.client.end().catch(() => {});
  }

  /** fireDue and requeueExpired take a pool: this one hands out the session itself. */
  asPool(): pg.Pool {
    const client = { query: (text: string, params?: unknown[]) => this.query(text, params), release: () => {} };
    return { connect: async () => client, query: client.query } as unknown as pg.Pool;
  }
}

/**
 * Fires due schedules at their fire time and re-queues executions of dead workers.
 *
 * One leader at a time among all worker processes: the one holding a session advisory lock on
 * its own connection (the scheduler's Session, not a pooled one), and everything the leader
 * writes (fire passes, re-queues) runs on that same session, so it commits only while the lock
 * is held: once the session is gone, the lock is free and nothing of the old leader can commit.
 * When the leader dies its session ends, the lock is free, and a follower takes over within
 * `followerRetryMs`. When its link dies silently (packets dropped, no reset) the server may keep
 * the session for a long time: the leader's statements time out and it steps down by its own
 * clock (`queryTimeoutMs`), and a follower that sees the lock holder's session silent for
 * `staleLeaderMs` terminates it and takes over. Firing is idempotent anyway (see fireDue: job
 * rows locked, unique (job, fire time) ticks), so even two leaders for a moment, or the
 * housekeeping task, cannot fire a tick twice.
 *
 * Precision does not depend on graphile-worker's polling: the leader sleeps until the earliest
 * `next_run_at` (or a `kiln_schedules` notification from submit, pause, resume or delete), then
 * queues the executions at once, and graphile-worker's insert notification wakes the workers.
 */
export class Scheduler {
  private session: Session | null = null;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private lastRequeue = 0;
  /** How far ahead of its instant the next pass is prepared (see AHEAD_MIN_MS). */
  private aheadMs = AHEAD_MIN_MS;
  /** Whether this process currently holds the leadership. */
  leader = false;

  constructor(private readonly opts: SchedulerOptions) {}

  private get queryTimeoutMs(): number {
    return this.opts.queryTimeoutMs ?? 5000;
  }

  private get staleLeaderMs(): number {
    return Math.max(this.opts.staleLeaderMs ?? 10_000, this.queryTimeoutMs + 2000);
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.resign();
    const s = this.session;
    this.session = null;
    if (s && !s.broken) {
      s.broken = true;
      await s.client.end().catch(() => {});
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let sleepMs: number;
      try {
        sleepMs = (await this.ensureLeader()) ? await this.lead() : (this.opts.followerRetryMs ?? 500);
      } catch (err) {
        this.opts.log(`scheduler: ${(err as Error).message}`, { level: 'error', err });
        await this.resign();
        sleepMs = this.opts.followerRetryMs ?? 500;
      }
      await this.sleep(sleepMs);
    }
  }

  /** One pass as the leader; resolves with how long to sleep. */
  private async lead(): Promise<number> {
    const session = this.session!;
    const pool = session.asPool();
    const now = Date.now();
    while ((await fireDue(pool, this.opts, now)).more) {
      if (this.stopped || !this.leader) return 0;
    }
    if (now - this.lastRequeue >= (this.opts.requeueEveryMs ?? 1000)) {
      this.lastRequeue = now;
      this.opts.onRequeued?.(await requeueExpired(pool, this.opts.log));
    }
    const { rows } = await session.query<{ at: Date | null }>(`select min(next_run_at) as at from jobs where next_run_at is not null`);
    // The session's statements are the leader's heartbeat (followers read its state_change):
    // never sleep long enough to look silent.
    const cap = Math.min(this.opts.maxSleepMs ?? 1000, this.opts.requeueEveryMs ?? 1000, Math.floor(this.staleLeaderMs / 5));
    if (!rows[0]?.at) return cap;
    const at = new Date(rows[0].at).getTime();
    const wait = at - Date.now();
    if (wait > 0 && wait <= this.aheadMs) {
      // Prepared ahead, committed at the instant; a pass at the instant takes what it left.
      const { writeMs } = await fireAhead(pool, this.opts, at);
      if (writeMs !== undefined) this.aheadMs = Math.max(AHEAD_MIN_MS, Math.min(AHEAD_MAX_MS, 1.5 * writeMs + 20));
      return Math.max(0, at - Date.now());
    }
    return Math.max(0, Math.min(cap, wait - this.aheadMs));
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        if (this.timer) clearTimeout(this.timer);
        this.wake = null;
        resolve();
      };
      this.timer = setTimeout(() => this.wake?.(), ms);
    });
  }

  private async ensureLeader(): Promise<boolean> {
    if (this.leader && this.session && !this.session.broken) return true;
    if (this.leader) await this.resign();
    if (!this.session || this.session.broken) {
      this.session = null;
      const opened = await Session.open(
        this.opts.pool,
        this.queryTimeoutMs,
        this.staleLeaderMs,
        (reason) => {
          if (this.leader) this.opts.log(`scheduler: leadership lost (the scheduler's connection: ${reason}); stepping down`, { level: 'warn' });
          this.leader = false; // stop firing at once; the loop drops the session and contends again
          this.wake?.();
        },
        () => this.wake?.(),
      );
      if (this.stopped) {
        opened.kill('stopping');
        return false;
      }
      this.session = opened;
    }
    const s = this.session;
    // A holder whose session has been silent on the server for staleLeaderMs is cut off (the
    // leader's loop runs a statement at least every staleLeaderMs / 5, and steps down by itself
    // after queryTimeoutMs without an answer): end its session, which frees the lock. Check and
    // termination in one statement, on the server's clock.
    const { rows: stale } = await s.query<{ pid: number; app: string; silent_ms: number }>(
      `with silent as materialized (
         select a.pid, a.application_name as app, (extract(epoch from now() - a.state_change) * 1000)::int as silent_ms
           from pg_locks l join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database where datname = current_database())
            and l.classid = 0 and l.objid = $1::bigint::oid and l.objsubid = 1 and a.pid <> pg_backend_pid()
            and a.state in ('idle', 'idle in transaction', 'idle in transaction (aborted)')
            and a.state_change < now() - $2::int * interval '1 millisecond')
       select pid, app, silent_ms from silent where pg_terminate_backend(pid)`,
      [LEADER_LOCK_KEY, this.staleLeaderMs],
    );
    for (const r of stale) {
      this.opts.log(`scheduler: the leader's session (pid ${r.pid}, ${r.app}) was silent for ${r.silent_ms} ms; terminated it to take over`, { level: 'warn' });
    }
    const { rows } = await s.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [LEADER_LOCK_KEY]);
    if (!rows[0]!.ok) return false;
    // Schedule changes wake the leader at once instead of at its next safety-net wake-up.
    await s.query('listen kiln_schedules');
    if (s.broken) return false;
    this.leader = true;
    this.opts.log('scheduler: this worker is the leader');
    return true;
  }

  private async resign(): Promise<void> {
    const s = this.session;
    if (this.leader) this.opts.log('scheduler: leadership released');
    this.leader = false;
    if (!s) return;
    if (s.broken) {
      // Destroyed: its session ends (at once, or when the link comes back or the server's
      // keepalive gives up), and with it the lock. A fresh session contends next time.
      this.session = null;
      return;
    }
    try {
      await s.query('unlisten kiln_schedules');
      await s.query('select pg_advisory_unlock_all()');
    } catch (err) {
      s.kill(`resign: ${(err as Error).message}`);
      this.session = null;
    }
  }
}
