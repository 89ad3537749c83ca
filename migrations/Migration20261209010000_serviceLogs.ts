import { Migration } from '@mikro-orm/migrations';

/**
 * `log_chunks.stream` may be `SERVICE`: the output of a job's service containers, kept with the
 * execution as a stream of its own (docs/design.md#services). `not valid` then `validate`: the
 * check is added without a long lock on a big table, and every existing row passes it.
 */
export class Migration20261209010000_serviceLogs extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "log_chunks" drop constraint if exists "log_chunks_stream_check";`);
    this.addSql(`alter table "log_chunks" add constraint "log_chunks_stream_check" check ("stream" in ('STDOUT', 'STDERR', 'SYSTEM', 'SERVICE')) not valid;`);
    this.addSql(`alter table "log_chunks" validate constraint "log_chunks_stream_check";`);
  }

  override async down(): Promise<void> {
    this.addSql(`delete from "log_chunks" where "stream" = 'SERVICE';`);
    this.addSql(`alter table "log_chunks" drop constraint if exists "log_chunks_stream_check";`);
    this.addSql(`alter table "log_chunks" add constraint "log_chunks_stream_check" check ("stream" in ('STDOUT', 'STDERR', 'SYSTEM'));`);
  }
}
