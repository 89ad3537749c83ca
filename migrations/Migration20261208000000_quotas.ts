import { Migration } from '@mikro-orm/migrations';

/**
 * Storage quotas (docs/design.md#quotas):
 * - `executions.artifact_bytes`: the bytes of an execution's recorded artifacts, written with them.
 *   An owner's usage is the sum over their executions, read through a partial index that holds only
 *   executions with artifacts; deleting an execution (or its job) gives its bytes back by itself.
 * - `store_deletions`: store prefixes of deleted executions still to be removed from the store,
 *   written in the transaction that deletes the rows, so a crash loses no deletion.
 * - `ticks_fire_time_index`: housekeeping prunes ticks older than the retention in batches.
 */
export class Migration20261208000000_quotas extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" add column "artifact_bytes" bigint not null default 0;`);
    this.addSql(
      `update "executions" set "artifact_bytes" = (select coalesce(sum(("a"->>'size')::bigint), 0) from jsonb_array_elements("artifacts") as "a") where "artifacts" <> '[]'::jsonb;`,
    );
    this.addSql(`create index "executions_owner_artifact_bytes_index" on "executions" ("owner") include ("artifact_bytes") where "artifact_bytes" > 0;`);
    this.addSql(
      `create table "store_deletions" ("prefix" text not null, "due_at" timestamptz not null default now(), "sweeps" int not null default 0, primary key ("prefix"));`,
    );
    this.addSql(`create index "store_deletions_due_index" on "store_deletions" ("due_at");`);
    this.addSql(`create index "ticks_fire_time_index" on "ticks" ("fire_time");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists "ticks_fire_time_index";`);
    this.addSql(`drop table if exists "store_deletions";`);
    this.addSql(`drop index if exists "executions_owner_artifact_bytes_index";`);
    this.addSql(`alter table "executions" drop column if exists "artifact_bytes";`);
  }
}
