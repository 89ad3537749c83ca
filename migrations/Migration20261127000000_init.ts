import { Migration } from '@mikro-orm/migrations';

/** Jobs, executions, their steps and log lines. */
export class Migration20261127000000_init extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "jobs" ("id" uuid not null, "owner" text not null, "name" text not null, "spec" text not null, "definition" jsonb not null, "schedule" text null, "timezone" text not null, "run_once" boolean not null, "priority" smallint not null, "paused" boolean not null default false, "next_run_at" timestamptz null, "schedule_anchor" timestamptz not null, "execution_count" int not null default 0, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "jobs_next_run_at_index" on "jobs" ("next_run_at");`);
    this.addSql(`alter table "jobs" add constraint "jobs_owner_name_unique" unique ("owner", "name");`);

    this.addSql(`create table "executions" ("id" uuid not null, "job_id" uuid not null, "owner" text not null, "number" int not null, "status" text not null default 'QUEUED', "trigger" text not null, "attempt" int not null default 1, "priority" smallint not null, "plan" jsonb not null, "scheduled_for" timestamptz null, "queued_at" timestamptz not null, "started_at" timestamptz null, "finished_at" timestamptz null, "exit_code" int null, "error" text null, "log_key" text null, "last_seq" int not null default 0, "worker_id" text null, "cancel_requested_at" timestamptz null, "artifacts" jsonb not null default '[]', "retry_of" uuid null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "executions_status_index" on "executions" ("status");`);
    this.addSql(`create index "executions_job_created_index" on "executions" ("job_id", "created_at" desc, "id" desc);`);
    this.addSql(`create index "executions_owner_created_index" on "executions" ("owner", "created_at" desc, "id" desc);`);
    this.addSql(`alter table "executions" add constraint "executions_job_number_unique" unique ("job_id", "number");`);
    this.addSql(`alter table "executions" add constraint "executions_status_check" check ("status" in ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'));`);
    this.addSql(`alter table "executions" add constraint "executions_trigger_check" check ("trigger" in ('SCHEDULE', 'MANUAL', 'SUBMIT', 'RETRY'));`);
    this.addSql(`alter table "executions" add constraint "executions_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on delete cascade;`);

    this.addSql(`create table "execution_steps" ("id" uuid not null, "execution_id" uuid not null, "index" int not null, "name" text not null, "status" text not null default 'PENDING', "exit_code" int null, "started_at" timestamptz null, "finished_at" timestamptz null, primary key ("id"));`);
    this.addSql(`alter table "execution_steps" add constraint "execution_steps_execution_index_unique" unique ("execution_id", "index");`);
    this.addSql(`alter table "execution_steps" add constraint "execution_steps_status_check" check ("status" in ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'SKIPPED'));`);
    this.addSql(`alter table "execution_steps" add constraint "execution_steps_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on delete cascade;`);

    this.addSql(`create table "log_chunks" ("execution_id" uuid not null, "seq" int not null, "stream" text not null, "step" int null, "text" text not null, "at" timestamptz not null, primary key ("execution_id", "seq"));`);
    this.addSql(`alter table "log_chunks" add constraint "log_chunks_stream_check" check ("stream" in ('STDOUT', 'STDERR', 'SYSTEM'));`);
    // Not an ORM relation (chunks are written in bulk with plain SQL), but deleting an
    // execution must still take its lines with it.
    this.addSql(`alter table "log_chunks" add constraint "log_chunks_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on delete cascade;`);
  }
}
