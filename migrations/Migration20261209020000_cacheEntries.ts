import { Migration } from '@mikro-orm/migrations';

/**
 * `cache_entries`: the build caches of `cache:` (docs/design.md#build-caches), one row per owner
 * and key, its object in the ArtifactStore under a per-owner prefix. `last_used_at` orders the
 * least-recently-used eviction; the (owner, last_used_at) index serves it and the per-owner sum.
 */
export class Migration20261209020000_cacheEntries extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "cache_entries" ("id" uuid primary key default gen_random_uuid(), "owner" text not null, "key" text not null, ` +
        `"object_key" text not null, "size" bigint not null, "created_at" timestamptz not null default now(), ` +
        `"last_used_at" timestamptz not null default now(), constraint "cache_entries_owner_key_unique" unique ("owner", "key"));`,
    );
    this.addSql(`create index "cache_entries_owner_last_used_index" on "cache_entries" ("owner", "last_used_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "cache_entries";`);
  }
}
