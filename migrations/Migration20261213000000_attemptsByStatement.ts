import { Migration } from '@mikro-orm/migrations';

/**
 * The attempt ledger (`execution_attempts`) is kept per statement, not per row: a claim of 16 runs
 * ran the row trigger's PL/pgSQL 16 times and the ledger's foreign key check 16 times, on the path
 * a free slot waits on (docs/design.md#dispatch). Now one update and one insert over the
 * statement's transition tables, and the foreign key gives way to a statement-level delete
 * trigger (as log_chunks' did): the rows are only ever written by this trigger, for executions
 * that exist. Same rows as before: an attempt opens when an execution becomes RUNNING (or is
 * claimed again under a new attempt number) and closes when it stops RUNNING (LOST when a new
 * attempt replaced it). Transition tables admit no column list, so it fires after every update
 * statement on executions and finds nothing to do in most.
 */
export class Migration20261213000000_attemptsByStatement extends Migration {
  override async up(): Promise<void> {
    this.addSql(`drop trigger if exists kiln_track_attempts on executions;`);
    this.addSql(`create or replace function kiln_track_attempts_by_statement() returns trigger language plpgsql as $$
      begin
        update execution_attempts a set finished_at = clock_timestamp(),
               outcome = case when n.attempt <> o.attempt then 'LOST' else n.status end
          from kiln_old_executions o join kiln_new_executions n on n.id = o.id
         where o.status = 'RUNNING' and (n.status <> 'RUNNING' or n.attempt <> o.attempt)
           and a.execution_id = o.id and a.attempt = o.attempt and a.finished_at is null;
        insert into execution_attempts (execution_id, job_id, attempt, worker_id, started_at)
        select n.id, n.job_id, n.attempt, n.worker_id, clock_timestamp()
          from kiln_new_executions n join kiln_old_executions o on o.id = n.id
         where n.status = 'RUNNING' and (o.status <> 'RUNNING' or n.attempt <> o.attempt);
        return null;
      end
    $$;`);
    this.addSql(`create trigger kiln_track_attempts after update on executions
      referencing old table as kiln_old_executions new table as kiln_new_executions
      for each statement execute function kiln_track_attempts_by_statement();`);
    this.addSql(`alter table "execution_attempts" drop constraint if exists "execution_attempts_execution_id_foreign";`);
    this.addSql(`create or replace function kiln_executions_delete_attempts() returns trigger language plpgsql as $$
      begin
        delete from execution_attempts where execution_id in (select id from deleted);
        return null;
      end
    $$;`);
    this.addSql(`create trigger kiln_executions_delete_attempts after delete on executions
      referencing old table as deleted for each statement execute function kiln_executions_delete_attempts();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists kiln_executions_delete_attempts on executions;`);
    this.addSql(`drop function if exists kiln_executions_delete_attempts();`);
    this.addSql(`delete from execution_attempts a where not exists (select 1 from executions e where e.id = a.execution_id);`);
    this.addSql(`alter table "execution_attempts" add constraint "execution_attempts_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on delete cascade;`);
    this.addSql(`drop trigger if exists kiln_track_attempts on executions;`);
    this.addSql(`drop function if exists kiln_track_attempts_by_statement();`);
    this.addSql(`create trigger kiln_track_attempts after update of status, attempt on executions
      for each row when (old.status is distinct from new.status or old.attempt is distinct from new.attempt)
      execute function kiln_track_attempts();`);
  }
}
