import type pg from 'pg';
import type { EngineGate } from '../runner/engineGate.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { Log } from '../util/log.js';
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

/**
 * The container engine answers (processes with the worker role only), as the worker's engine gate
 * sees it, so that /readyz and the worker agree: while the gate is down the check fails at once
 * with the gate's reason (where the engine was looked for, and what happened); while it is up, a
 * probe has the gate check again (an engine that just went away is noticed by the probe).
 */
export function dockerCheck(gate: EngineGate): ReadinessCheck {
  return {
    name: 'docker',
    logsItself: true,
    check: async () => {
      if (gate.up) await gate.check();
      if (!gate.up) throw new Error(gate.reason ?? 'the container engine does not answer');
    },
  };
}

/**
 * The readiness of a Kiln process: Postgres and the store always, the engine when it runs
 * executions. Why a check fails goes to `log`, once per change; /readyz names the check only.
 */
export function processReadiness(opts: { pool: pg.Pool; store: ArtifactStore; engine?: EngineGate | null; log?: Log }): Readiness {
  const checks = [postgresCheck(opts.pool), storeCheck(opts.store)];
  if (opts.engine) checks.push(dockerCheck(opts.engine));
  return new Readiness(checks, undefined, undefined, opts.log);
}
