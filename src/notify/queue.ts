import type { Sql } from '../util/sql.js';

/**
 * Queueing of notifications (docs/design.md#notifications): deliveries are rows written in the
 * transaction of the event itself, so an event that happened is notified whatever crashes next,
 * and one that rolled back never is. Senders are woken by NOTIFY on this channel at commit.
 */
export const NOTIFY_CHANNEL = 'kiln_notify';

/** An ISO-8601 UTC text with milliseconds, as the API shows times. */
export const iso = (ts: string) => `to_char(${ts} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The execution part of a payload, from a relation `x` with the executions' columns. */
const EXECUTION_JSON = `jsonb_build_object('id', x.id, 'status', x.status, 'exit_code', x.exit_code, 'error', x.error,
  'started_at', ${iso('x.started_at')}, 'finished_at', ${iso('x.finished_at')})`;

/**
 * The statement that queues the deliveries of ended executions, read from `source`: a relation
 * (a CTE's name, or a subquery in parentheses) with the columns id, job_id, status, exit_code,
 * error, started_at, finished_at, created_at of each execution, its final status set. Only jobs
 * whose definition has `notify` cost more than one primary-key probe of `jobs`. What is "previous"
 * is read from the statement's snapshot: the job's newest final, not cancelled execution created
 * before this one whose failure was not retried (a retried failure is not an outcome: its retry
 * chain's last execution is). Each (rule, channel) that matched gets one row, once
 * (notification_deliveries_once), and the senders are told at commit (one NOTIFY per transaction:
 * Postgres folds identical ones).
 */
export function endingsInsert(source: string): string {
  return `insert into notification_deliveries (owner, job_id, execution_id, event, rule_index, channel, target, payload)
select j.owner, j.id, x.id, m.event, m.rule_index, m.channel, m.target,
       jsonb_build_object('event', m.event, 'events', m.events, 'job', jsonb_build_object('id', j.id, 'name', j.name),
                          'execution', ${EXECUTION_JSON}, 'occurred_at', ${iso('coalesce(x.finished_at, now())')})
  from ${source} x
  join jobs j on j.id = x.job_id and j.definition ? 'notify'
  left join lateral (
    select p.status from executions p
     where p.job_id = x.job_id and p.id <> x.id and p.created_at <= x.created_at and p.status in ('SUCCEEDED', 'FAILED', 'TIMED_OUT')
       and not exists (select 1 from executions r where r.retry_of = coalesce(p.retry_of, p.id) and r.retry_number = p.retry_number + 1)
     order by p.created_at desc, p.id desc limit 1
  ) prev on true
  cross join lateral kiln_notify_matches(j.definition->'notify', x.status, prev.status) m
on conflict do nothing
returning pg_notify('${NOTIFY_CHANNEL}', '')`;
}

/**
 * Queues the notifications of executions that just got their final status, in the caller's
 * transaction (after the statement that set it). Used where the ending is not the finish
 * statement itself (see finishMany): a failure whose job may retry learns only after the finish
 * whether a retry was queued. Returns how many deliveries were queued.
 */
export async function queueEndings(sql: Sql, executionIds: readonly string[]): Promise<number> {
  if (executionIds.length === 0) return 0;
  const source = `(select id, job_id, status, exit_code, error, started_at, finished_at, created_at from executions
                    where id = any($1::uuid[]) and status in ('SUCCEEDED', 'FAILED', 'TIMED_OUT'))`;
  return (await sql(endingsInsert(source), [executionIds])).length;
}

/**
 * running_longer (docs/design.md#notifications): for each RUNNING execution started longer ago
 * than a rule's `longer_than`, a delivery per channel of that rule, once per execution (the unique
 * key makes the sweeps of every worker idempotent). Starts from the running executions, a small
 * set found by a partial index, not from the jobs.
 */
export async function queueRunningLonger(sql: Sql): Promise<number> {
  const rows = await sql(
    `insert into notification_deliveries (owner, job_id, execution_id, event, rule_index, channel, target, payload)
     select j.owner, j.id, x.id, 'running_longer', (r.ord - 1)::int, ch.channel, kiln_notify_target(r.rule, ch.channel),
            jsonb_build_object('event', 'running_longer', 'events', jsonb_build_array('running_longer'),
                               'job', jsonb_build_object('id', j.id, 'name', j.name), 'execution', ${EXECUTION_JSON},
                               'occurred_at', ${iso('now()')})
       from executions x
       join jobs j on j.id = x.job_id and j.definition ? 'notify'
      cross join lateral jsonb_array_elements(j.definition->'notify') with ordinality as r(rule, ord)
      cross join (values ('webhook'), ('slack'), ('email')) as ch(channel)
      where x.status = 'RUNNING' and r.rule->ch.channel is not null
        and (r.rule->'on') @> '"running_longer"'::jsonb
        and x.started_at < now() - ((r.rule->>'longerThanMs')::bigint * interval '1 millisecond')
        and not exists (select 1 from notification_deliveries d where d.execution_id = x.id and d.rule_index = (r.ord - 1)::int
                           and d.channel = ch.channel and d.event = 'running_longer')
     on conflict do nothing
     returning pg_notify('${NOTIFY_CHANNEL}', '')`,
  );
  return rows.length;
}
