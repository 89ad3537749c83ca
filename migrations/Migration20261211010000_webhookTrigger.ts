import { Migration } from '@mikro-orm/migrations';

/**
 * `executions.trigger` may be WEBHOOK: a run queued by a signed `POST /api/v1/hooks/:job_id`
 * (docs/design.md#webhook-triggers), told apart from one a user started (MANUAL).
 */
export class Migration20261211010000_webhookTrigger extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" drop constraint "executions_trigger_check";`);
    this.addSql(`alter table "executions" add constraint "executions_trigger_check" check ("trigger" in ('SCHEDULE', 'MANUAL', 'SUBMIT', 'RETRY', 'WEBHOOK'));`);
  }

  override async down(): Promise<void> {
    this.addSql(`update "executions" set "trigger" = 'MANUAL' where "trigger" = 'WEBHOOK';`);
    this.addSql(`alter table "executions" drop constraint "executions_trigger_check";`);
    this.addSql(`alter table "executions" add constraint "executions_trigger_check" check ("trigger" in ('SCHEDULE', 'MANUAL', 'SUBMIT', 'RETRY'));`);
  }
}
