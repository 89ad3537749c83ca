import { Migration } from '@mikro-orm/migrations';

/**
 * `execution_attempts`: one row per attempt a worker started, kept by a trigger on `executions`
 * so that no writer (claim, finish, lease re-queue, infrastructure re-queue, cancel) has to
 * remember it. An attempt starts when its execution becomes RUNNING and ends when the execution
 * leaves RUNNING or moves to another attempt (outcome LOST: its worker died, was fenced, or its
 * engine failed). It is the evidence behind "never two at once" across attempts of one
 * execution, which the executions row alone cannot show (it keeps the last attempt only).
 *
 * Times are clock_timestamp(), not now(): several attempts' changes may share one transaction.
 * Rows are never updated by anything else; duplicates of an (execution, attempt) would be a bug,
 * so the key is a serial id and they are left visible rather than folded.
 */
export class Migration20261127050000_attempts extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "execution_attempts" ("id" bigserial primary key, "execution_id" uuid not null, "job_id" uuid not null, "attempt" int not null, "worker_id" text null, "started_at" timestamptz not null, "finished_at" timestamptz null, "outcome" text null);`);
    this.addSql(`create index "execution_attempts_execution_index" on "execution_attempts" ("execution_id", "attempt");`);
    this.addSql(`create index "execution_attempts_job_index" on "execution_attempts" ("job_id", "started_at");`);
    this.addSql(`alter table "execution_attempts" add constraint "execution_attempts_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on delete cascade;`);

    this.addSql(`create or replace function kiln_track_attempts() returns trigger language plpgsql as $$
      begin
        if old.status = 'RUNNING' and (new.status <> 'RUNNING' or new.attempt <> old.attempt) then
          update execution_attempts set finished_at = clock_timestamp(),
                 outcome = case when new.attempt <> old.attempt then 'LOST' else new.status end
           where execution_id = old.id and attempt = old.attempt and finished_at is null;
        end if;
        if new.status = 'RUNNING' and (old.status <> 'RUNNING' or new.attempt <> old.attempt) then
          insert into execution_attempts (execution_id, job_id, attempt, worker_id, started_at)
          values (new.id, new.job_id, new.attempt, new.worker_id, clock_timestamp());
        end if;
        return null;
      end
    $$;`);
    this.addSql(`create trigger kiln_track_attempts after update of status, attempt on executions
      for each row when (old.status is distinct from new.status or old.attempt is distinct from new.attempt)
      execute function kiln_track_attempts();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists kiln_track_attempts on executions;`);
    this.addSql(`drop function if exists kiln_track_attempts();`);
    this.addSql(`drop table if exists "execution_attempts";`);
  }
}
