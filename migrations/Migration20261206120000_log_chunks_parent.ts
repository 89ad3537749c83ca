import { Migration } from '@mikro-orm/migrations';

/**
 * `log_chunks` keeps its tie to `executions` with statement-level triggers instead of a foreign
 * key. A foreign key checks every inserted row on its own (a query and a row lock per line): for
 * a build printing a million lines that was more than half of what storing them cost Postgres,
 * and the log path's throughput. The triggers keep what the key promised, per statement:
 *
 * - an insert whose lines name an execution that does not exist fails with foreign_key_violation
 *   (SQLSTATE 23503, as before), and the executions named are locked `for key share` to the end of
 *   the transaction, so none can be deleted under lines being stored (the key's own lock);
 * - deleting executions deletes their lines in the same statement's wake (ON DELETE CASCADE),
 *   including executions deleted by the cascade from `jobs`.
 *
 * Nothing updates `log_chunks.execution_id`, so updates are not checked.
 * The writers lock the execution's row before inserting anyway (the attempt fence, see
 * src/logs/storeLines.ts), so the check never waits in practice.
 */
export class Migration20261206120000_log_chunks_parent extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "log_chunks" drop constraint "log_chunks_execution_id_foreign";`);

    // One pass over the inserted rows (a hashed distinct: a batch names one execution, the lease
    // reaper's insert a few), then one index lookup and key-share lock per execution named.
    this.addSql(`create or replace function kiln_log_chunks_check_parent() returns trigger language plpgsql as $$
      declare
        r record;
      begin
        for r in select distinct execution_id from inserted loop
          perform 1 from executions where id = r.execution_id for key share;
          if not found then
            raise foreign_key_violation using
              message = format('insert into log_chunks names execution %s, which does not exist', r.execution_id),
              constraint = 'log_chunks_execution_id_foreign';
          end if;
        end loop;
        return null;
      end
    $$;`);
    this.addSql(`create trigger kiln_log_chunks_parent after insert on log_chunks
      referencing new table as inserted for each statement execute function kiln_log_chunks_check_parent();`);

    this.addSql(`create or replace function kiln_executions_delete_log_chunks() returns trigger language plpgsql as $$
      begin
        delete from log_chunks where execution_id in (select id from deleted);
        return null;
      end
    $$;`);
    this.addSql(`create trigger kiln_executions_delete_log_chunks after delete on executions
      referencing old table as deleted for each statement execute function kiln_executions_delete_log_chunks();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists kiln_executions_delete_log_chunks on executions;`);
    this.addSql(`drop function if exists kiln_executions_delete_log_chunks();`);
    this.addSql(`drop trigger if exists kiln_log_chunks_parent on log_chunks;`);
    this.addSql(`drop function if exists kiln_log_chunks_check_parent();`);
    this.addSql(`delete from log_chunks c where not exists (select 1 from executions e where e.id = c.execution_id);`);
    this.addSql(`alter table "log_chunks" add constraint "log_chunks_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on delete cascade;`);
  }
}
