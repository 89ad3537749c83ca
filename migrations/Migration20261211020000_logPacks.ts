import { Migration } from '@mikro-orm/migrations';

/**
 * Log packs (docs/design.md#archives): a small log is archived as a byte range of one object
 * shared by the logs of its archive round. `log_offset`/`log_bytes` locate it inside `log_key`
 * (both null: the log is the whole object). `log_pack_compactions` lists packs that hold bytes of
 * deleted executions, to be rewritten without them (or removed when nothing else is left in them).
 */
export class Migration20261211020000_logPacks extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" add column "log_offset" integer null, add column "log_bytes" integer null;`);
    this.addSql(`create table "log_pack_compactions" ("key" text not null primary key, "due_at" timestamptz not null default now());`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "log_pack_compactions";`);
    this.addSql(`alter table "executions" drop column "log_offset", drop column "log_bytes";`);
  }
}
