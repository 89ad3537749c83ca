import { Migration } from '@mikro-orm/migrations';

/**
 * `image_grants`: which owners may run a local image that was pulled with registry credentials
 * (security review M4). A row is written when an owner's pull with credentials brought the image
 * (or proved they can pull it); an image id with any row is private, and runs for an owner only
 * with a row of theirs. Images never pulled with credentials (public, built locally) have none.
 */
export class Migration20261208010000_imageGrants extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "image_grants" (
      "image_id" text not null,
      "owner" text not null,
      "granted_at" timestamptz not null default now(),
      primary key ("image_id", "owner")
    );`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "image_grants";`);
  }
}
