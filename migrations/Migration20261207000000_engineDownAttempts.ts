import { Migration } from '@mikro-orm/migrations';

/**
 * `executions.engine_down_attempts`: how many of an execution's attempts were handed back because
 * their worker's container engine was found unreachable when they broke. Those do not count toward
 * the limit on infrastructure attempts (see infrastructureVerdict): a user's job must not end
 * FAILED because an operator restarted Docker a few times while it waited or ran.
 */
export class Migration20261207000000_engineDownAttempts extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" add column "engine_down_attempts" int not null default 0;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "executions" drop column if exists "engine_down_attempts";`);
  }
}
