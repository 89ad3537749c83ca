import type pg from 'pg';
import type { ImageGrants } from './registryAccess.js';

/**
 * The image_grants table (migrations/Migration20261208010000_imageGrants.ts): which owners may
 * run a local image that was pulled with registry credentials. Written by the runner only.
 */
export class PgImageGrants implements ImageGrants {
  constructor(private readonly pool: pg.Pool) {}

  async lookup(imageId: string, owner: string): Promise<{ private: boolean; granted: boolean }> {
    const { rows } = await this.pool.query<{ private: boolean; granted: boolean }>(
      `select count(*) > 0 as private, coalesce(bool_or(owner = $2), false) as granted from image_grants where image_id = $1`,
      [imageId, owner],
    );
    return rows[0] ?? { private: false, granted: false };
  }

  async grant(imageId: string, owner: string): Promise<void> {
    await this.pool.query(`insert into image_grants (image_id, owner) values ($1, $2) on conflict do nothing`, [imageId, owner]);
  }
}
