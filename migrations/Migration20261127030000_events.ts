import { Migration } from '@mikro-orm/migrations';

/**
 * Live events across processes, raised by Postgres itself so that no writer (worker, API,
 * scheduler) has to remember to publish:
 *
 * - `kiln_execution_state`: the state of one execution (status, attempt, exit code, times,
 *   last_seq and every step's [status, exit code]) as of the commit of a transaction that changed
 *   its status, its attempt or a step's status. The triggers are deferred to the commit, so every
 *   trigger of one transaction builds the same payload and NOTIFY delivers it once (identical
 *   payloads of one transaction are folded): one event per change, never a half-done state.
 * - `kiln_log`: `{executionId, lastSeq}` after each statement that inserts log chunks; readers
 *   then read the rows after the last seq they delivered.
 *
 * Payloads stay far under NOTIFY's 8000-byte limit: at most 100 steps of ~20 bytes each, and the
 * owner only when it is short (listeners look it up otherwise).
 */
export class Migration20261127030000_events extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function kiln_execution_state_payload(eid uuid) returns text language sql stable as $$
      select json_build_object(
        'executionId', e.id,
        'jobId', e.job_id,
        'owner', case when octet_length(e.owner) <= 512 then e.owner end,
        'status', e.status,
        'attempt', e.attempt,
        'exitCode', e.exit_code,
        'startedAt', e.started_at,
        'finishedAt', e.finished_at,
        'lastSeq', e.last_seq,
        'steps', coalesce(
          (select json_agg(json_build_array(s.status, s.exit_code) order by s.index) from execution_steps s where s.execution_id = e.id),
          '[]'::json)
      )::text
      from executions e where e.id = eid
    $$;`);

    this.addSql(`create or replace function kiln_notify_execution_state() returns trigger language plpgsql as $$
      declare
        eid uuid;
        payload text;
      begin
        if tg_table_name = 'executions' then
          eid := new.id;
        else
          eid := new.execution_id;
        end if;
        payload := kiln_execution_state_payload(eid);
        -- null when the execution was deleted later in the same transaction
        if payload is not null then
          perform pg_notify('kiln_execution_state', payload);
        end if;
        return null;
      end
    $$;`);

    this.addSql(`create constraint trigger kiln_execution_inserted_event after insert on executions
      deferrable initially deferred for each row execute function kiln_notify_execution_state();`);
    this.addSql(`create constraint trigger kiln_execution_changed_event after update of status, attempt on executions
      deferrable initially deferred for each row
      when (old.status is distinct from new.status or old.attempt is distinct from new.attempt)
      execute function kiln_notify_execution_state();`);
    this.addSql(`create constraint trigger kiln_step_changed_event after update of status on execution_steps
      deferrable initially deferred for each row
      when (old.status is distinct from new.status)
      execute function kiln_notify_execution_state();`);

    this.addSql(`create or replace function kiln_notify_log_chunks() returns trigger language plpgsql as $$
      declare
        r record;
      begin
        for r in select execution_id, max(seq) as last_seq from inserted group by execution_id loop
          perform pg_notify('kiln_log', json_build_object('executionId', r.execution_id, 'lastSeq', r.last_seq)::text);
        end loop;
        return null;
      end
    $$;`);
    this.addSql(`create trigger kiln_log_chunks_event after insert on log_chunks
      referencing new table as inserted for each statement execute function kiln_notify_log_chunks();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists kiln_log_chunks_event on log_chunks;`);
    this.addSql(`drop trigger if exists kiln_step_changed_event on execution_steps;`);
    this.addSql(`drop trigger if exists kiln_execution_changed_event on executions;`);
    this.addSql(`drop trigger if exists kiln_execution_inserted_event on executions;`);
    this.addSql(`drop function if exists kiln_notify_log_chunks();`);
    this.addSql(`drop function if exists kiln_notify_execution_state();`);
    this.addSql(`drop function if exists kiln_execution_state_payload(uuid);`);
  }
}
