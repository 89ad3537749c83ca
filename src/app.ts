import 'reflect-metadata';
import path from 'node:path';
import type pg from 'pg';
import { loadOrCreateLocalSecret } from './auth/localSecret.js';
import type { AuthConfig } from './auth/types.js';
import { createVerifier } from './auth/verifier.js';
import { localAuth, type Config } from './config.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { createOrm, migrateOrm, type Orm } from './db/orm.js';
import { createPool } from './db/pool.js';
import { startHttp, type HttpRole } from './http/server.js';
import { startOpsServer, type OpsEndpoints, type OpsServer } from './ops/endpoints.js';
import type { Log } from './ops/log.js';
import { KilnMetrics } from './ops/metrics.js';
import { processReadiness } from './ops/processOps.js';
import type { Readiness } from './ops/readiness.js';
import { migrateQueue } from './queue/queue.js';
import { buildKilnSchema } from './resolvers/schema.js';
import { DockerBackend } from './runner/docker/docker.js';
import { NoopBackend } from './runner/noop.js';
import type { ContainerBackend } from './runner/types.js';
import { loadOrCreateSecretsKey, SecretBox } from './secrets/SecretBox.js';
import type { Deps } from './services/deps.js';
import type { ArtifactStore } from './storage/ArtifactStore.js';
import { createArtifactStore } from './storage/createArtifactStore.js';
import { startRunnerRuntime } from './worker/runnerRuntime.js';
import { startWorker, type WorkerRole } from './worker/worker.js';

export interface KilnOptions {
  config: Readonly<Config>;
  api: boolean;
  worker: boolean;
  log: Log;
  /** Replaces the configured store (tests). */
  store?: ArtifactStore;
  /** Replaces the configured container backend (tests). */
  backend?: ContainerBackend;
}

/** A running Kiln process with its roles. */
export interface Kiln {
  deps: Deps;
  auth: AuthConfig | null;
  http: HttpRole | null;
  worker: WorkerRole | null;
  /** This process's metrics (served at /metrics). */
  metrics: KilnMetrics;
  readiness: Readiness;
  /** `kiln worker`'s own listener for /healthz, /readyz and /metrics (KILN_WORKER_PORT), if any. */
  opsServer: OpsServer | null;
  /**
   * Graceful shutdown, idempotent: /readyz answers 503 at once; the API stops accepting connections,
   * lets requests in flight finish and closes its sockets, while the worker stops taking work and
   * gives running executions KILN_SHUTDOWN_GRACE_MS before handing them back; then everything else
   * closes, the database last.
   */
  stop(): Promise<void>;
}

/** Arbitrary constant: serialises migrations of processes that start together. */
const MIGRATION_LOCK_KEY = 0x6b696c6d;

async function migrate(pool: pg.Pool, orm: Orm): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await migrateOrm(orm);
    await migrateQueue(pool);
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    client.release();
  }
}

/** Local mode with the data directory's secret when no auth is configured (first run needs no set-up). */
async function resolveAuth(config: Readonly<Config>, log: Log): Promise<AuthConfig> {
  if (config.auth !== null) return config.auth;
  const { secret, created } = await loadOrCreateLocalSecret(config.dataDir);
  if (created) log(`created a local token secret in ${config.dataDir}`);
  log(`local auth: mint a token with \`KILN_DATA_DIR=${config.dataDir} npx kiln token <user>\``);
  return localAuth(secret);
}

/** The key that seals stored secrets: KILN_SECRETS_KEY, else one kept in the data directory. */
async function resolveSecretBox(config: Readonly<Config>, log: Log): Promise<SecretBox> {
  if (config.secretsKey !== null) return new SecretBox(config.secretsKey);
  const { key, created } = await loadOrCreateSecretsKey(config.dataDir);
  if (created) log(`created a secrets key in ${config.dataDir}; processes on other machines need the same one (KILN_SECRETS_KEY)`);
  return new SecretBox(key);
}

/**
 * The composition root: database (embedded when DATABASE_URL is unset), migrations, store,
 * then the API and/or worker roles. Stops in reverse order.
 */
export async function startKiln(opts: KilnOptions): Promise<Kiln> {
  const { config, log } = opts;
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === null) {
    embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort, log);
    databaseUrl = embedded.url;
    log(`embedded Postgres on 127.0.0.1:${config.embeddedPgPort} (data in ${config.dataDir})`);
  }
  const pool = createPool(databaseUrl, config.workerConcurrency + 10, `kiln ${config.workerId}`);
  const orm = await createOrm(databaseUrl);
  const stops: Array<() => Promise<void>> = [
    async () => embedded?.stop(),
    async () => void (await pool.end()),
    () => orm.close(),
  ];
  // The roles drain together (the worker must stop taking work at once, not after the API has
  // drained); what they use closes after them, in reverse order of start.
  let http: HttpRole | null = null;
  let worker: WorkerRole | null = null;
  let readiness: Readiness | null = null;
  let stopping: Promise<void> | null = null;
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      readiness?.shutDown();
      const failed = (err: Error) => log(`shutdown: ${err.message}`, { level: 'error', err });
      await Promise.all([http?.stop().catch(failed), worker?.stop({ graceMs: config.shutdownGraceMs }).catch(failed)]);
      for (const stop of stops.reverse()) await stop().catch(failed);
    })());
  try {
    await migrate(pool, orm);
    const store =
      opts.store ??
      createArtifactStore(
        config.s3
          ? { kind: 's3', bucket: config.s3.bucket, endpoint: config.s3.endpoint ?? undefined, region: config.s3.region, forcePathStyle: config.s3.forcePathStyle }
          : { kind: 'filesystem', dir: path.join(config.dataDir, 'artifacts') },
      );
    const deps: Deps = { orm, pool, store, config, secretBox: await resolveSecretBox(config, log) };
    const metrics = new KilnMetrics();
    metrics.watchDatabase(pool);
    const backend =
      opts.backend ??
      (config.executor === 'noop'
        ? new NoopBackend()
        : new DockerBackend(undefined, {
            pullTimeoutMs: config.runner.pullTimeoutMs,
            registryAuth: config.runner.registryAuth,
            stopGraceMs: config.runner.stopGraceMs,
          }));

    readiness = processReadiness({ pool, store, backend: opts.worker ? backend : null });
    const ops: OpsEndpoints = { readiness, metrics, log };
    if (opts.worker) {
      const runner = await startRunnerRuntime({
        pool, backend, store, log,
        connection: { connectionString: databaseUrl, application_name: `kiln cancel listener ${config.workerId}`.slice(0, 63) },
        secretBox: deps.secretBox,
        settings: config.runner,
        workerId: config.workerId,
      });
      stops.push(() => runner.stop());
      worker = await startWorker({
        pool, store, backend, log,
        runner: runner.services,
        workerId: config.workerId,
        concurrency: config.workerConcurrency,
        pollIntervalMs: config.pollIntervalMs,
        defaultImage: config.defaultImage,
        leaseMs: config.leaseMs,
        misfireGraceMs: config.misfireGraceMs,
        runAllMax: config.runAllMax,
        retryBaseMs: config.retryBaseMs,
        metrics,
      });
      log(`worker ${config.workerId} running up to ${config.workerConcurrency} executions at once (${config.executor} executor)`, { workerId: config.workerId });
    }

    // `kiln worker` answers probes and scrapes on a listener of its own; with the API in the same
    // process they are on the API's port.
    let opsServer: OpsServer | null = null;
    if (opts.worker && !opts.api && config.workerPort !== null) {
      opsServer = await startOpsServer(ops, config.host, config.workerPort);
      stops.push(() => opsServer!.stop());
      log(`health and metrics at ${opsServer.url} (/healthz, /readyz, /metrics)`);
    }

    let auth: AuthConfig | null = null;
    if (opts.api) {
      auth = await resolveAuth(config, log);
      http = await startHttp({
        deps, log,
        verifier: createVerifier(auth),
        schema: await buildKilnSchema(),
        host: config.host,
        port: config.port,
        ops,
      });
      log(`GraphQL at ${http.url}/graphql, REST at ${http.url}/api/v1`);
    }
    return { deps, auth, http, worker, metrics, readiness, opsServer, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
