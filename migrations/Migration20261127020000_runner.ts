import { Migration } from '@mikro-orm/migrations';

/**
 * The runner's tables:
 *
 * - `secrets`: per-owner values injected into builds as environment variables. Only the
 *   encrypted value is stored (AES-256-GCM, see src/secrets/SecretBox.ts); nothing reads it back
 *   through the API.
 * - `kiln_installation`: one random id per Kiln database, created by the first worker that
 *   starts (not here: databases copied from a migrated template must not share it). Containers
 *   carry it as the label `kiln.installation`, so the orphan reaper only ever touches containers
 *   of its own installation, even on a Docker engine that several installations share.
 */
export class Migration20261127020000_runner extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "secrets" ("owner" text not null, "name" text not null, "value" text not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("owner", "name"));`);
    this.addSql(`alter table "secrets" add constraint "secrets_name_check" check ("name" ~ '^[A-Za-z_][A-Za-z0-9_]*$' and length("name") <= 256);`);
    this.addSql(`create table "kiln_installation" ("singleton" boolean not null default true, "id" uuid not null, "created_at" timestamptz not null default now(), primary key ("singleton"), constraint "kiln_installation_singleton_check" check ("singleton"));`);
  }
}
