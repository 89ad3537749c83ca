import type { ArtifactStore } from './ArtifactStore.js';
import { FilesystemStore } from './filesystem.js';
import { S3Store } from './s3.js';

/**
 * Which store to use, as loadConfig produces it: a local directory by default, S3 when
 * `S3_BUCKET` is set. S3 credentials come from the AWS SDK's default chain (`AWS_*`).
 */
export type ArtifactStoreConfig =
  | { kind: 'filesystem'; dir: string }
  | { kind: 's3'; bucket: string; endpoint?: string; region: string; forcePathStyle: boolean };

export function createArtifactStore(cfg: ArtifactStoreConfig): ArtifactStore {
  switch (cfg.kind) {
    case 'filesystem':
      return new FilesystemStore(cfg.dir);
    case 's3':
      return new S3Store({ bucket: cfg.bucket, endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: cfg.forcePathStyle });
  }
}
