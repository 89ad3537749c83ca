import type pg from 'pg';
import type { Config } from '../config.js';
import type { Orm } from '../db/orm.js';
import type { SecretBox } from '../secrets/SecretBox.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { OffLoop } from './offLoop.js';

/** What the use cases need; built once in the composition root. */
export interface Deps {
  orm: Orm;
  pool: pg.Pool;
  store: ArtifactStore;
  config: Readonly<Config>;
  /** Seals secrets before they are stored (setSecret). */
  secretBox: SecretBox;
  /** Compiles job files and computes schedules off the event loop (docs/design.md#off-the-loop). */
  offLoop: OffLoop;
}
