import type pg from 'pg';
import type { ContainerBackend } from '../runner/types.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import { OPS_QUERY_TIMEOUT_MS } from './opsPool.js';
import { Readiness, type ReadinessCheck } from './readiness.js';

/**
 * Postgres answers `select 1` within the check deadline (the pool's own connect included). Give it
 * the ops pool (createOpsPool), not the one that renews leases.
 */
export function postgresCheck(pool: pg.Pool): ReadinessCheck {
  return {
    name: 'postgres',
    check: async () => {
      // query_timeout ends the wait on a connection that accepts but never answers (and drops that
      // connection); the ops pool's connectionTimeoutMillis ends a connect that hangs. Readiness's
      // own deadline answers the probe meanwhile.
      await pool.query({ text: 'select 1', query_timeout: OPS_QUERY_TIMEOUT_MS } as pg.QueryConfig);
    },
  };
}

/** The artifact store answers (S3: HeadBucket; local directory: writable). */
export function storeCheck(store: ArtifactStore): ReadinessCheck {
  return { name: 'store', check: () => store.check() };
}

/** The container engine answers its ping (processes with the worker role only). */
export function dockerCheck(backend: ContainerBackend): ReadinessCheck {
  return { name: 'docker', check: () => backend.ping() };
}

/** The readiness of a Kiln process: Postgres and the store always, the engine when it runs executions. */
export function processReadiness(opts: { pool: pg.Pool; store: ArtifactStore; backend?: ContainerBackend | null }): Readiness {
  const checks = [postgresCheck(opts.pool), storeCheck(opts.store)];
  if (opts.backend) checks.push(dockerCheck(opts.backend));
  return new Readiness(checks);
}
