import { Migration } from '@mikro-orm/migrations';

/**
 * `rate_limits`: the request budgets every API process shares (src/http/rateLimit.ts), in the
 * shape rate-limiter-flexible's RateLimiterPostgres reads and writes: one row per caller key and
 * window, `points` spent so far, `expire` the window's end in epoch milliseconds. Created here
 * rather than by the library at start-up (it is told `tableCreated: true`), so that the API's
 * role needs no DDL and two processes starting together do not race to create it. `key` is
 * text: a token's `sub` has no length limit worth guessing.
 */
export class Migration20261208020000_rateLimits extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table if not exists "rate_limits" ("key" text primary key, "points" integer not null default 0, "expire" bigint);`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "rate_limits";`);
  }
}
