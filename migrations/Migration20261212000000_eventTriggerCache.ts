import { Migration } from '@mikro-orm/migrations';

/**
 * The execution-state trigger asks whether anyone follows once per transaction, not once per row
 * (docs/design.md#live-events). It fires at commit for every execution and step row the
 * transaction changed: a worker's finish-and-claim changes 48 rows for 16 runs, and each asked
 * `kiln_event_interest` (a step's row asked `executions` for its owner first). The answers are
 * kept in transaction-local settings (`set_config(..., true)`), which end with the transaction:
 * `kiln.events_anyone` (does anyone follow anyone), then the last owner asked about and its
 * answer. Every trigger of a commit runs within its few milliseconds, so the answer is as fresh
 * as asking per row was.
 */
export class Migration20261212000000_eventTriggerCache extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create or replace function kiln_notify_execution_state() returns trigger language plpgsql as $$
      declare
        eid uuid;
        o text;
        payload text;
      begin
        case current_setting('kiln.events_anyone', true)
          when 'off' then return null;
          when 'on' then null;
          else
            -- nobody follows anybody: no NOTIFY, so this commit takes no cluster-wide lock
            if not exists (select 1 from kiln_event_interest where expires_at > now()) then
              perform set_config('kiln.events_anyone', 'off', true);
              return null;
            end if;
            perform set_config('kiln.events_anyone', 'on', true);
        end case;
        if tg_table_name = 'executions' then
          eid := new.id;
          o := new.owner;
        else
          eid := new.execution_id;
          select e.owner into o from executions e where e.id = eid;
        end if;
        if o is null then
          return null;
        end if;
        if current_setting('kiln.events_owner', true) is distinct from o then
          perform set_config('kiln.events_owner', o, true);
          perform set_config('kiln.events_owner_followed', kiln_owner_followed(o)::text, true);
        end if;
        if current_setting('kiln.events_owner_followed', true) is distinct from 'true' then
          return null;
        end if;
        payload := kiln_execution_state_payload(eid);
        if payload is not null then
          perform pg_notify('kiln_execution_state', payload);
        end if;
        return null;
      end
    $$;`);
  }

  override async down(): Promise<void> {
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
  }
}
