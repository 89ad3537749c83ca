import { Migration } from '@mikro-orm/migrations';

/** The tick ledger, execution leases and the retry chain. */
export class Migration20261127010000_scheduling extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "ticks" ("job_id" uuid not null, "fire_time" timestamptz not null, "outcome" text not null, "catch_up" boolean not null default false, "execution_id" uuid null, "recorded_at" timestamptz not null default now(), primary key ("job_id", "fire_time"));`);
    this.addSql(`alter table "ticks" add constraint "ticks_outcome_check" check ("outcome" in ('FIRED', 'SKIPPED_OVERLAP', 'MISSED', 'PAUSED'));`);
    this.addSql(`alter table "ticks" add constraint "ticks_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on delete cascade;`);
    this.addSql(`alter table "ticks" add constraint "ticks_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on delete set null;`);

    this.addSql(`alter table "executions" add column "lease_expires_at" timestamptz null, add column "retry_number" int not null default 0;`);
    // The scheduler and the claim ask "does this job have an active execution?" on every fire.
    this.addSql(`create index "executions_active_index" on "executions" ("job_id", "status") where "status" in ('QUEUED', 'RUNNING');`);
    // The requeue pass looks for expired leases only among running executions.
    this.addSql(`create index "executions_lease_index" on "executions" ("lease_expires_at") where "status" = 'RUNNING';`);
    this.addSql(`create index "jobs_due_index" on "jobs" ("next_run_at") where "next_run_at" is not null;`);
    this.addSql(`drop index if exists "jobs_next_run_at_index";`);
  }
}
