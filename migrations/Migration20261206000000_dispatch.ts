import { Migration } from '@mikro-orm/migrations';

/**
 * The executions table becomes its own queue (see docs/design.md#dispatch):
 *
 * - `run_at`: not before this time (a retry's backoff, an infrastructure hand-back's wait).
 * - `executions_one_running_per_job`: at most one RUNNING execution per job, enforced by Postgres
 *   itself. Every claim goes through it, so "never two at once" holds whatever any process
 *   believes; a claim that would break it fails with a unique violation and claims nothing.
 * - `executions_dispatch_index` / `executions_running_owner_index`: the claim's fair-share scan
 *   (per owner, best priority first) and its count of each owner's running executions.
 * - `archive_due_at` / `archive_failures`: the log archive queue, written by the finish in the
 *   same statement as the outcome; archivers take due rows in batches.
 * - fillfactor 80, so that updates of unindexed columns (a log batch's last_seq) can stay on their page.
 * - `executions_status_index` goes: every status change wrote an entry in it, and what it served
 *   (QUEUED and RUNNING rows) the partial indexes above serve.
 * - `kiln_event_interest`: which owners some API process has live subscribers for. The event
 *   triggers NOTIFY only for those: a transaction that sends a NOTIFY takes a cluster-wide lock
 *   at commit, which made every execution's commits queue behind each other's.
 */
export class Migration20261206000000_dispatch extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" add column "run_at" timestamptz not null default now();`);
    this.addSql(`alter table "executions" add column "archive_due_at" timestamptz null;`);
    this.addSql(`alter table "executions" add column "archive_failures" int not null default 0;`);
    this.addSql(`update "executions" set "archive_due_at" = now()
      where "log_key" is null and "status" in ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT');`);
    this.addSql(`create unique index "executions_one_running_per_job" on "executions" ("job_id") where "status" = 'RUNNING';`);
    this.addSql(`create index "executions_dispatch_index" on "executions" ("owner", "priority" desc, "queued_at", "id") where "status" = 'QUEUED';`);
    this.addSql(`create index "executions_running_owner_index" on "executions" ("owner") where "status" = 'RUNNING';`);
    this.addSql(`create index "executions_archive_due_index" on "executions" ("archive_due_at") where "archive_due_at" is not null;`);
    this.addSql(`drop index if exists "executions_status_index";`);
    // Room on each page for updates that change no indexed column (last_seq, log_key) to stay HOT.
    this.addSql(`alter table "executions" set (fillfactor = 80);`);

    this.addSql(`create table "kiln_event_interest" ("listener" text not null, "owner" text not null, "expires_at" timestamptz not null, primary key ("listener", "owner"));`);
    this.addSql(`create index "kiln_event_interest_owner_index" on "kiln_event_interest" ("owner", "expires_at");`);
    this.addSql(`create or replace function kiln_owner_followed(o text) returns boolean language sql stable as $$
      select exists (select 1 from kiln_event_interest where owner = o and expires_at > now())
    $$;`);

    this.addSql(`create or replace function kiln_notify_execution_state() returns trigger language plpgsql as $$
      declare
        eid uuid;
        o text;
        payload text;
      begin
        if tg_table_name = 'executions' then
          eid := new.id;
          o := new.owner;
        else
          eid := new.execution_id;
          select e.owner into o from executions e where e.id = eid;
        end if;
        -- nobody follows this owner: no NOTIFY, so this commit takes no cluster-wide lock
        if o is null or not kiln_owner_followed(o) then
          return null;
        end if;
        payload := kiln_execution_state_payload(eid);
        if payload is not null then
          perform pg_notify('kiln_execution_state', payload);
        end if;
        return null;
      end
    $$;`);
    this.addSql(`create or replace function kiln_notify_log_chunks() returns trigger language plpgsql as $$
      declare
        r record;
      begin
        if not exists (select 1 from kiln_event_interest) then
          return null;
        end if;
        for r in select i.execution_id, max(i.seq) as last_seq from inserted i
                   join executions e on e.id = i.execution_id
                  where kiln_owner_followed(e.owner)
                  group by i.execution_id loop
          perform pg_notify('kiln_log', json_build_object('executionId', r.execution_id, 'lastSeq', r.last_seq)::text);
        end loop;
        return null;
      end
    $$;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop function if exists kiln_owner_followed(text) cascade;`);
    this.addSql(`drop table if exists "kiln_event_interest";`);
    this.addSql(`drop index if exists "executions_archive_due_index";`);
    this.addSql(`create index if not exists "executions_status_index" on "executions" ("status");`);
    this.addSql(`alter table "executions" reset (fillfactor);`);
    this.addSql(`drop index if exists "executions_running_owner_index";`);
    this.addSql(`drop index if exists "executions_dispatch_index";`);
    this.addSql(`drop index if exists "executions_one_running_per_job";`);
    this.addSql(`alter table "executions" drop column "archive_failures", drop column "archive_due_at", drop column "run_at";`);
  }
}
