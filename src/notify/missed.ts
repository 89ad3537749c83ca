import type { Sql } from '../util/sql.js';
import type { JobSpec } from '../jobfile/types.js';
import type { TickOutcome } from '../schedule/policies.js';
import { iso } from './queue.js';

/**
 * How long a new missed delivery waits before its first try, absorbing the missed ticks that
 * follow: the fire times a slow restart keeps missing or skipping for a few more seconds join the
 * outage's message instead of making one each. The sender's 1 s poll picks it up when due.
 */
export const MISSED_HOLD_MS = 2000;

/**
 * The least time between two missed deliveries of one job, rule and channel: a job that keeps
 * overlapping itself (SKIPPED_OVERLAP every second) gets one message a minute, each counting the
 * fire times since the last, rather than one every few seconds.
 */
export const MISSED_MIN_GAP_MS = 60_000;

/** One MISSED or SKIPPED_OVERLAP tick the scheduler just recorded. */
export interface MissedTick {
  jobId: string;
  fireAt: Date;
  outcome: TickOutcome;
}

/** Whether a job's file has a rule on `missed`: the scheduler calls {@link queueMissed} for such jobs only. */
export function wantsMissed(spec: JobSpec): boolean {
  return spec.notify?.some((rule) => rule.on.includes('missed')) ?? false;
}

/**
 * Queues the `missed` notifications of these ticks, in the scheduler's transaction that recorded
 * them (docs/design.md#notification-missed). Grouped: one delivery per job, rule and channel,
 * counting the fire times; a PENDING missed delivery of the same job, rule and channel that no
 * sender has tried yet (attempts = 0) absorbs them instead (count grows, last_fire_at moves), so
 * a catch-up after ten missed seconds is one message saying 10, not ten messages. A new one is
 * held MISSED_HOLD_MS before it is due, and at least MISSED_MIN_GAP_MS after the previous one of
 * its job, rule and channel was queued, so what follows within that time joins it.
 *
 * Safe against the sender: a claim sets attempts to 1 under the row lock; an absorb waiting on
 * that lock re-reads the row, no longer matches it, and inserts a new delivery. Two scheduler
 * passes never absorb into the same row at once, since each holds its jobs' rows locked.
 */
export async function queueMissed(sql: Sql, ticks: readonly MissedTick[]): Promise<void> {
  if (ticks.length === 0) return;
  await sql(
    `with fired as (
       select u.job_id, count(*)::int as n, min(u.fire_at) as first_at, max(u.fire_at) as last_at
         from unnest($1::uuid[], $2::timestamptz[]) as u(job_id, fire_at) group by u.job_id
     ), targets as (
       select j.id as job_id, j.owner, j.name, (r.ord - 1)::int as rule_index, ch.channel, kiln_notify_target(r.rule, ch.channel) as target,
              f.n, f.first_at, f.last_at
         from fired f
         join jobs j on j.id = f.job_id and j.definition ? 'notify'
        cross join lateral jsonb_array_elements(j.definition->'notify') with ordinality as r(rule, ord)
        cross join (values ('webhook'), ('slack'), ('email')) as ch(channel)
        where (r.rule->'on') @> '"missed"'::jsonb and r.rule->ch.channel is not null
     ), absorbed as (
       update notification_deliveries d
          set count = d.count + t.n, last_fire_at = t.last_at
         from targets t
        where d.job_id = t.job_id and d.rule_index = t.rule_index and d.channel = t.channel
          and d.event = 'missed' and d.status = 'PENDING' and d.attempts = 0
       returning d.job_id, d.rule_index, d.channel
     )
     insert into notification_deliveries (owner, job_id, event, rule_index, channel, target, count, first_fire_at, last_fire_at, payload, next_attempt_at)
     select t.owner, t.job_id, 'missed', t.rule_index, t.channel, t.target, t.n, t.first_at, t.last_at,
            -- No 'missed' object: the columns are its truth while later ticks join (the sender adds it).
            jsonb_build_object('event', 'missed', 'events', jsonb_build_array('missed'), 'job', jsonb_build_object('id', t.job_id, 'name', t.name),
                               'occurred_at', ${iso('now()')}),
            greatest(now() + $3 * interval '1 millisecond',
                     (select max(p.created_at) from notification_deliveries p
                       where p.job_id = t.job_id and p.rule_index = t.rule_index and p.channel = t.channel and p.event = 'missed')
                     + $4 * interval '1 millisecond')
       from targets t
      where not exists (select 1 from absorbed a where a.job_id = t.job_id and a.rule_index = t.rule_index and a.channel = t.channel)`,
    [ticks.map((t) => t.jobId), ticks.map((t) => t.fireAt.toISOString()), MISSED_HOLD_MS, MISSED_MIN_GAP_MS],
  );
}
