import { MikroORM } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { ENTITIES } from '../entities/index.js';
import { MIGRATIONS } from '../../migrations/index.js';

export type Orm = MikroORM;

/** Opens the ORM on `databaseUrl`. Entities are listed explicitly: no folder scanning. */
export async function createOrm(databaseUrl: string, opts: { poolMax?: number } = {}): Promise<Orm> {
  return MikroORM.init({
    clientUrl: databaseUrl,
    entities: ENTITIES,
    metadataProvider: ReflectMetadataProvider,
    extensions: [Migrator],
    migrations: { migrationsList: MIGRATIONS, snapshot: false, transactional: true, allOrNothing: true },
    pool: { min: 0, max: opts.poolMax ?? 10 },
    // Each request and each task forks its own EntityManager; the global one is never used.
    allowGlobalContext: false,
    debug: false,
  });
}

/** Applies Kiln's own migrations (graphile-worker's are applied by the queue module). */
export async function migrateOrm(orm: Orm): Promise<void> {
  await orm.migrator.up();
}
