import { Migration } from '@mikro-orm/migrations';

/**
 * Notifications (docs/design.md#notifications): `notification_deliveries`, one row per event, rule
 * and channel, whose id is the delivery id a receiver sees again after a crash; its tries in
 * `notification_attempts`. `kiln_notify_matches` is the pure rule that turns an execution's ending
 * into the events each rule asked for, used by the finish statement and by src/notify/queue.ts.
 */
export class Migration20261211000000_notifications extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "notification_deliveries" ("id" uuid not null default gen_random_uuid(), "owner" text not null, ` +
        `"job_id" uuid not null references "jobs" ("id") on delete cascade, "execution_id" uuid null, "event" text not null, ` +
        `"rule_index" int not null, "channel" text not null, "target" text not null, "count" int not null default 1, ` +
        `"first_fire_at" timestamptz null, "last_fire_at" timestamptz null, "payload" jsonb not null, ` +
        `"status" text not null default 'PENDING', "attempts" int not null default 0, "next_attempt_at" timestamptz not null default now(), ` +
        `"leased_until" timestamptz null, "response_code" int null, "last_error" text null, ` +
        `"created_at" timestamptz not null default now(), "delivered_at" timestamptz null, ` +
        `constraint "notification_deliveries_pkey" primary key ("id"), ` +
        `constraint "notification_deliveries_once" unique ("execution_id", "rule_index", "channel", "event"));`,
    );
    this.addSql(`create index "notification_deliveries_due_index" on "notification_deliveries" ("next_attempt_at") where "status" = 'PENDING';`);
    this.addSql(`create index "notification_deliveries_job_index" on "notification_deliveries" ("job_id", "created_at" desc, "id" desc);`);
    this.addSql(
      `create table "notification_attempts" ("delivery_id" uuid not null references "notification_deliveries" ("id") on delete cascade, ` +
        `"attempt" int not null, "started_at" timestamptz not null, "duration_ms" int not null, "response_code" int null, "error" text null, ` +
        `constraint "notification_attempts_pkey" primary key ("delivery_id", "attempt"));`,
    );
    // "Was this execution retried?" decides whether its ending notifies (a retry chain notifies once,
    // at its end); retries are few, so the index is small.
    this.addSql(`create index "executions_retry_of_index" on "executions" ("retry_of", "retry_number") where "retry_of" is not null;`);
    this.addSql(MATCHES);
  }

  override async down(): Promise<void> {
    this.addSql(`drop function if exists kiln_notify_matches(jsonb, text, text);`);
    this.addSql(`drop function if exists kiln_notify_target(jsonb, text);`);
    this.addSql(`drop index if exists "executions_retry_of_index";`);
    this.addSql(`drop table if exists "notification_attempts";`);
    this.addSql(`drop table if exists "notification_deliveries";`);
  }
}

/**
 * For an execution that ended with `status` after `previous` (the status of the job's last final,
 * not cancelled, not retried execution before it; null: none), each (rule, channel) that matched:
 * `event` the most specific matched event (timed_out > first_failure > failed; fixed), `events`
 * every matched event of the rule, `target` the channel's display form (kiln_notify_target: a
 * Slack URL kept in a secret shows as `secret NAME`). Pure.
 */
const MATCHES = `
create function kiln_notify_target(rule jsonb, channel text) returns text
language sql immutable parallel safe as $$
  select case channel
           when 'webhook' then rule->'webhook'->>'url'
           when 'slack' then coalesce(rule->'slack'->>'url', 'secret ' || (rule->'slack'->>'secret'))
           else (select string_agg(a, ', ') from jsonb_array_elements_text(rule->'email') as a)
         end
$$;
create function kiln_notify_matches(rules jsonb, status text, previous text)
returns table (rule_index int, channel text, event text, events jsonb, target text)
language sql immutable parallel safe as $$
  with candidates(ev, specificity, canonical) as (
    values ('timed_out', 1, 4), ('first_failure', 2, 2), ('failed', 3, 1), ('fixed', 4, 3)
  ), hits as (
    select c.ev, c.specificity, c.canonical from candidates c
     where case c.ev
             when 'timed_out' then status = 'TIMED_OUT'
             when 'first_failure' then status in ('FAILED', 'TIMED_OUT') and (previous is null or previous = 'SUCCEEDED')
             when 'failed' then status in ('FAILED', 'TIMED_OUT')
             else status = 'SUCCEEDED' and previous in ('FAILED', 'TIMED_OUT')
           end
  ), matched as (
    select (r.ord - 1)::int as rule_index, r.rule,
           (select h.ev from hits h where (r.rule->'on') @> to_jsonb(h.ev) order by h.specificity limit 1) as event,
           (select jsonb_agg(h.ev order by h.canonical) from hits h where (r.rule->'on') @> to_jsonb(h.ev)) as events
      from jsonb_array_elements(rules) with ordinality as r(rule, ord)
  )
  select m.rule_index, ch.channel, m.event, m.events,
         kiln_notify_target(m.rule, ch.channel)
    from matched m cross join (values ('webhook'), ('slack'), ('email')) as ch(channel)
   where m.event is not null and m.rule->ch.channel is not null
$$;`;
