import type pg from 'pg';
import type { NotifyChannelName, NotifyEvent, NotifyRule } from '../jobfile/types.js';
import { backoffMs } from '../util/backoff.js';
import type { Log } from '../util/log.js';
import { RoundLoop } from '../util/roundLoop.js';
import { sqlOfPg } from '../util/sql.js';
import type { Channel, DeliveryToSend, NotifyPayload, SendResult } from './channels/types.js';
import { queueRunningLonger } from './queue.js';

/** After this many attempts a delivery that still fails is FAILED. */
export const MAX_ATTEMPTS = 10;
/** Backoff between attempts: 1 s doubled per attempt, at most 10 minutes (the one backoff rule). */
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 10 * 60_000;
/** Longest error text stored, after masking. */
const MAX_ERROR_CHARS = 500;

/** What a sender needs (docs/design.md#notifications). */
export interface NotifySenderOptions {
  pool: pg.Pool;
  channels: Readonly<Record<NotifyChannelName, Channel>>;
  /** Base of the execution links in payloads: KILN_PUBLIC_URL, or http://HOST:PORT. */
  publicUrl: () => string;
  /** How long a claim holds a delivery (KILN_NOTIFY_LEASE_MS): a sender that died is replaced after it. */
  leaseMs: number;
  /** How often it looks for due deliveries without being woken; default 1 s. */
  pollMs?: number;
  /** How often it queues running_longer deliveries; default 2 s. */
  sweepMs?: number;
  /** Most deliveries one round claims and sends at once; default 16. */
  batch?: number;
  /** Masks `owner`'s stored secrets in a text (error texts are shown through the API). */
  mask(owner: string, text: string): Promise<string>;
  log: Log;
}

interface ClaimedRow {
  id: string;
  owner: string;
  job_id: string;
  execution_id: string | null;
  event: NotifyEvent;
  channel: NotifyChannelName;
  rule_index: number;
  payload: Omit<NotifyPayload, 'delivery_id'>;
  attempts: number;
  rule: NotifyRule | null;
  count: number;
  first_fire_at: Date | null;
  last_fire_at: Date | null;
}

/**
 * Claims due deliveries: each gets its attempt number and a lease (next_attempt_at moves to the
 * lease's end, so a delivery whose sender died is due again then, under the same id). Skips rows
 * another sender holds locked; the index on next_attempt_at of PENDING rows finds them.
 */
const CLAIM = `
with due as (
  select id from notification_deliveries
   where status = 'PENDING' and next_attempt_at <= now()
   order by next_attempt_at limit $1 for update skip locked
)
update notification_deliveries d
   set attempts = d.attempts + 1, leased_until = now() + $2 * interval '1 millisecond', next_attempt_at = now() + $2 * interval '1 millisecond'
  from due where d.id = due.id
returning d.id, d.owner, d.job_id, d.execution_id, d.event, d.channel, d.rule_index, d.payload, d.attempts,
          d.count, d.first_fire_at, d.last_fire_at,
          (select j.definition->'notify'->d.rule_index from jobs j where j.id = d.job_id) as rule`;

/**
 * Records one attempt and its outcome. Only the claim that made this attempt may move the row
 * (`attempts` still equal): a sender whose lease ran out while it sent finds it claimed again.
 */
const RECORD = `
with try as (
  insert into notification_attempts (delivery_id, attempt, started_at, duration_ms, response_code, error)
  values ($1, $2, $3, $4, $5, $6) on conflict do nothing
)
update notification_deliveries
   set status = $7, response_code = $5, last_error = $6, leased_until = null,
       next_attempt_at = now() + $8 * interval '1 millisecond',
       delivered_at = case when $7 = 'DELIVERED' then now() end
 where id = $1 and attempts = $2 and status = 'PENDING'`;

/** The status a delivery takes after an attempt, and when it is due again if still PENDING. Pure. */
export function nextState(result: SendResult, attempt: number): { status: 'DELIVERED' | 'FAILED' | 'PENDING'; retryInMs: number } {
  if (result.ok) return { status: 'DELIVERED', retryInMs: 0 };
  if (result.permanent || attempt >= MAX_ATTEMPTS) return { status: 'FAILED', retryInMs: 0 };
  return { status: 'PENDING', retryInMs: backoffMs(BACKOFF_BASE_MS, attempt, BACKOFF_MAX_MS) };
}

/**
 * The notification sender of a worker role (docs/design.md#notifications): rounds of claim, send,
 * record, when woken (NOTIFY kiln_notify, through `wake`) and every `pollMs`; the running_longer
 * sweep every `sweepMs`. One round at a time; a wake-up during a round makes another right after.
 */
export class NotifySender {
  private readonly rounds: RoundLoop;
  private lastSweep = 0;
  private failing = false;
  private readonly abort = new AbortController();

  constructor(private readonly o: NotifySenderOptions) {
    this.rounds = new RoundLoop(() => this.drain(), o.pollMs ?? 1000);
  }

  start(): void {
    this.rounds.start();
  }

  wake(): void {
    this.rounds.wake();
  }

  /**
   * Claims nothing more; the sends in flight finish (each within its timeout) and are recorded.
   * With `abortAfterMs`, those still going then are aborted and recorded as failed tries.
   */
  async stop(abortAfterMs = 12_000): Promise<void> {
    const abort = setTimeout(() => this.abort.abort(new Error('the worker is shutting down')), abortAfterMs);
    try {
      await this.rounds.stop();
    } finally {
      clearTimeout(abort);
    }
  }

  private async drain(): Promise<void> {
    try {
      if (Date.now() - this.lastSweep >= (this.o.sweepMs ?? 2000)) {
        this.lastSweep = Date.now();
        await queueRunningLonger(sqlOfPg(this.o.pool));
      }
      const batch = this.o.batch ?? 16;
      while (!this.rounds.stopped) {
        const { rows } = await this.o.pool.query<ClaimedRow>(CLAIM, [batch, this.o.leaseMs]);
        // Every send of the batch is recorded (or its lease runs out) before the next claim.
        const outcomes = await Promise.allSettled(rows.map((row) => this.deliver(row)));
        const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
        if (failed) throw failed.reason;
        if (rows.length < batch) break;
      }
      if (this.failing) this.o.log('notify sender: works again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.o.log(`notify sender: ${(err as Error).message}; trying again at the next poll`, { level: 'warn', err });
      this.failing = true;
    }
  }

  /** One attempt of one claimed delivery, recorded whatever happens. */
  private async deliver(row: ClaimedRow): Promise<void> {
    const started = new Date();
    let result: SendResult;
    if (row.rule === null) {
      result = { ok: false, permanent: true, responseCode: null, error: `the job no longer has notify rule ${row.rule_index}` };
    } else {
      try {
        result = await this.o.channels[row.channel].send(this.toSend(row, row.rule), this.abort.signal);
      } catch (err) {
        result = { ok: false, permanent: false, responseCode: null, error: (err as Error).message };
      }
    }
    const error = result.error === null ? null : (await this.o.mask(row.owner, result.error)).slice(0, MAX_ERROR_CHARS);
    const next = nextState(result, row.attempts);
    await this.o.pool.query(RECORD, [
      row.id, row.attempts, started, Date.now() - started.getTime(), result.responseCode, error, next.status, next.retryInMs,
    ]);
    const level = next.status === 'FAILED' ? 'warn' : 'debug';
    this.o.log(`notification ${row.id} (${row.event} by ${row.channel}) attempt ${row.attempts}: ${next.status}${error ? `: ${error}` : ''}`, {
      level, jobId: row.job_id, executionId: row.execution_id ?? undefined,
    });
  }

  private toSend(row: ClaimedRow, rule: NotifyRule): DeliveryToSend {
    const payload: NotifyPayload = {
      delivery_id: row.id,
      ...row.payload,
      ...(row.payload.execution ? { execution: { ...row.payload.execution, url: `${this.o.publicUrl()}/executions/${row.payload.execution.id}` } } : {}),
      // A missed delivery absorbs fire times until it is first sent: its columns are the truth.
      ...(row.first_fire_at && row.last_fire_at
        ? { missed: { count: row.count, first_fire_at: row.first_fire_at.toISOString(), last_fire_at: row.last_fire_at.toISOString() } }
        : {}),
    };
    return {
      id: row.id, owner: row.owner, jobId: row.job_id, executionId: row.execution_id, event: row.event, channel: row.channel,
      ruleIndex: row.rule_index, payload, attempt: row.attempts, rule,
    };
  }
}
