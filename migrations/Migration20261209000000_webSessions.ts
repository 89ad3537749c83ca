import { Migration } from '@mikro-orm/migrations';

/**
 * The web app's sign-in state (docs/design.md#web-sessions). Each table keys its rows by the
 * SHA-256 of a random secret the browser holds; the secret itself is never stored, so a read of
 * the database signs no one in.
 *
 * - `web_sessions`: one row per signed-in browser: its owner (`sub`, the same as a bearer
 *   token's), a display name, the CSRF token bound to it, when it was created and last seen, and
 *   its absolute expiry. The idle timeout is configuration, applied against `last_seen_at`.
 * - `web_sign_in_codes`: local mode's one-time sign-in links; `used_at` is set by the one use.
 * - `web_login_flows`: an authorization-code flow in progress (state, PKCE verifier, nonce,
 *   where to return), keyed by the hash of its state and deleted when the callback takes it.
 */
export class Migration20261209000000_webSessions extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table if not exists "web_sessions" (
      "id_hash" bytea primary key,
      "owner" text not null,
      "name" text not null,
      "csrf_token" text not null,
      "created_at" timestamptz not null default now(),
      "last_seen_at" timestamptz not null default now(),
      "expires_at" timestamptz not null
    );`);
    this.addSql(`create index if not exists "web_sessions_expires_at_index" on "web_sessions" ("expires_at");`);
    this.addSql(`create table if not exists "web_sign_in_codes" (
      "code_hash" bytea primary key,
      "owner" text not null,
      "created_at" timestamptz not null default now(),
      "expires_at" timestamptz not null,
      "used_at" timestamptz
    );`);
    this.addSql(`create table if not exists "web_login_flows" (
      "state_hash" bytea primary key,
      "code_verifier" text not null,
      "nonce" text not null,
      "return_to" text not null,
      "created_at" timestamptz not null default now(),
      "expires_at" timestamptz not null
    );`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "web_login_flows";`);
    this.addSql(`drop table if exists "web_sign_in_codes";`);
    this.addSql(`drop table if exists "web_sessions";`);
  }
}
