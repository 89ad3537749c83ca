import { Migration } from '@mikro-orm/migrations';

/**
 * `hook_deliveries`: the webhook deliveries that ran a job (docs/design.md#webhook-triggers), one
 * row per job and `X-GitHub-Delivery` id, so a redelivered id answers with the first run.
 */
export class Migration20261210000000_hookDeliveries extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "hook_deliveries" ("job_id" uuid not null references "jobs" ("id") on delete cascade, "delivery_id" text not null, ` +
        `"execution_id" uuid not null, "ref" text null, "created_at" timestamptz not null default now(), ` +
        `constraint "hook_deliveries_pkey" primary key ("job_id", "delivery_id"));`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "hook_deliveries";`);
  }
}
