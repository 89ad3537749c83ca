import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261127000000_init } from './Migration20261127000000_init.js';

/** Every migration, oldest first. Listed explicitly so `dist/` needs no folder scanning. */
export const MIGRATIONS: MigrationObject[] = [
  { name: 'Migration20261127000000_init', class: Migration20261127000000_init },
];
