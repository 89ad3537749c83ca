import 'reflect-metadata';
import path from 'node:path';
import type pg from 'pg';
import { loadOrCreateLocalSecret } from './auth/localSecret.js';
import type { AuthConfig } from './auth/types.js';
import { createVerifier } from './auth/verifier.js';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { createOrm, migrateOrm, type Orm } from './db/orm.js';
import { createPool } from './db/pool.js';
import { startHttp, type HttpRole } from './http/server.js';
import { startOpsServer, type OpsEndpoints, type OpsServer } from './ops/endpoints.js';
import { handBackNow } from './worker/run/handBackNow.js';
import type { Log } from './util/log.js';
import { KilnMetrics } from './ops/metrics.js';
import { createOpsPool } from './ops/opsPool.js';
import { processReadiness } from './ops/processOps.js';
import type { Readiness, ReadinessCheck } from './ops/readiness.js';
import { StartInterrupted, type StopRequest } from './ops/shutdown.js';
import { migrateQueue } from './executions/queue.js';
import { buildKilnSchema } from './resolvers/schema.js';
import { DockerBackend } from './runner/docker/docker.js';
import { EngineGate } from './runner/engineGate.js';
import { NoopBackend } from './runner/noop.js';
import type { ContainerBackend } from './runner/types.js';
import { loadOrCreateSecretsKey, SecretBox } from './secrets/SecretBox.js';
import type { Deps } from './services/deps.js';
import type { ArtifactStore } from './storage/ArtifactStore.js';
import { createArtifactStore } from './storage/createArtifactStore.js';
import { OffLoop } from './services/offLoop.js';
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
  /**
   * Stop requests (signals) that may come during start-up: the worker, if started, begins its
   * drain at once; start-up goes no further than its current step, stops what has started and
   * throws StartInterrupted. Watched only until startKiln settles.
   */
  stopRequest?: StopRequest;
  /** Checks /readyz adds to this process's own: `kiln start`'s API answers for its worker thread's engine too. */
  extraChecks?: ReadinessCheck[];
}

/** A running Kiln process with its roles. */
export interface Kiln {
  deps: Deps;
  /** The database it runs on: DATABASE_URL, or the embedded Postgres it started. */
  databaseUrl: string;
  auth: AuthConfig | null;
  http: HttpRole | null;
  worker: WorkerRole | null;
  /** This process's metrics (served at /metrics). */
  metrics: KilnMetrics;
  readiness: Readiness;
  /** The worker role's engine gate (null without the worker role). */
  engine: EngineGate | null;
  /** `kiln worker`'s own listener for /healthz, /readyz and /metrics (KILN_WORKER_PORT), if any. */
  opsServer: OpsServer | null;
  /**
   * Graceful shutdown, idempotent: /readyz answers 503 at once; the API stops accepting connections,
   * lets requests in flight finish and closes its sockets, while the worker stops taking work and
   * gives running executions KILN_SHUTDOWN_GRACE_MS (or `graceMs`) before handing them back; then
   * everything else closes, the database last. A later call with a shorter grace (a second signal:
   * 0) stops the executions still running and hands them back at once.
   */
  stop(opts?: { graceMs?: number }): Promise<void>;
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

/**
 * With NODE_ENV=production, an API must be told how to verify tokens: the data directory's secret
 * (below) is for a laptop, and a production server that made one silently would accept tokens
 * that anyone with a shell on it can mint (security review L4; docs/design.md#configuration-checks).
 */
function refuseUnconfiguredProductionAuth(config: Readonly<Config>): void {
  if (!config.production || config.auth !== null) return;
  throw new ConfigError(
    'NODE_ENV',
    'production needs configured authentication: set KILN_JWKS_URL, KILN_JWT_ISSUER and KILN_JWT_AUDIENCE (your identity provider), or KILN_JWT_SECRET',
  );
}

/** Local mode with the data directory's secret when no auth is configured (first run needs no set-up). */
async function resolveAuth(config: Readonly<Config>, log: Log): Promise<AuthConfig> {
  if (config.auth !== null) return config.auth;
  const { secret, created } = await loadOrCreateLocalSecret(config.dataDir);
  if (created) log(`created a local token secret in ${config.dataDir}`);
  log(`local auth: mint a token with \`KILN_DATA_DIR=${config.dataDir} npx kiln token <user>\``);
  return { mode: 'local', secret, ...config.localTokenClaims };
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
  if (opts.api) refuseUnconfiguredProductionAuth(config);
  const interrupted = () => {
    if (opts.stopRequest?.requested) throw new StartInterrupted();
  };
  interrupted();
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === null) {
    embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort, log);
    databaseUrl = embedded.url;
    log(`embedded Postgres on 127.0.0.1:${config.embeddedPgPort} (data in ${config.dataDir})`);
  }
  const pool = createPool(databaseUrl, config.workerConcurrency + 10, `kiln ${config.workerId}`);
  // Probes and scrapes query on a connection of their own: see createOpsPool.
  const opsPool = createOpsPool(databaseUrl, `kiln ops ${config.workerId}`);
  const orm = await createOrm(databaseUrl);
  const stops: Array<() => Promise<void>> = [
    async () => embedded?.stop(),
    async () => void (await pool.end()),
    async () => void (await opsPool.end()),
    () => orm.close(),
  ];
  // The roles drain together (the worker must stop taking work at once, not after the API has
  // drained); what they use closes after them, in reverse order of start.
  let http: HttpRole | null = null;
  let worker: WorkerRole | null = null;
  let readiness: Readiness | null = null;
  let metrics: KilnMetrics | null = null;
  let stopping: Promise<void> | null = null;
  const failed = (err: Error) => log(`shutdown: ${err.message}`, { level: 'error', err });
  // The worker drains once, with the grace of the first stop; a shorter grace asked for later hands
  // the executions still running back at once (handingBack: awaited before the database closes).
  let workerStop: { done: Promise<void>; graceMs: number } | null = null;
  let handingBack: Promise<unknown> = Promise.resolve();
  const stopWorker = (graceMs: number): Promise<void> => {
    if (worker === null) return Promise.resolve();
    if (workerStop === null) {
      workerStop = { done: worker.stop({ graceMs }).catch(failed), graceMs };
    } else if (graceMs < workerStop.graceMs) {
      workerStop.graceMs = graceMs;
      const reason = `worker ${config.workerId} shut down before it finished (grace cut to ${graceMs} ms)`;
      handingBack = Promise.all([handingBack, handBackNow(worker.runs, { pool, reason, log, metrics: metrics ?? undefined })]);
    }
    return workerStop.done;
  };
  const stopAll = (stopOpts: { graceMs?: number } = {}): Promise<void> => {
    const graceMs = stopOpts.graceMs ?? config.shutdownGraceMs;
    readiness?.shutDown();
    if (stopping !== null) {
      void stopWorker(graceMs);
      return stopping;
    }
    stopping = (async () => {
      await Promise.all([http?.stop().catch(failed), stopWorker(graceMs)]);
      await handingBack;
      for (const stop of stops.reverse()) await stop().catch(failed);
    })();
    return stopping;
  };
  // A stop asked for during start-up: probes fail and the worker stops taking work at once.
  const unwatch =
    opts.stopRequest?.watch((graceMs) => {
      readiness?.shutDown();
      void stopWorker(graceMs);
    }) ?? (() => {});
  try {
    interrupted();
    await migrate(pool, orm);
    interrupted();
    const store =
      opts.store ??
      createArtifactStore(
        config.s3
          ? { kind: 's3', bucket: config.s3.bucket, endpoint: config.s3.endpoint ?? undefined, region: config.s3.region, forcePathStyle: config.s3.forcePathStyle }
          : { kind: 'filesystem', dir: path.join(config.dataDir, 'artifacts') },
      );
    // Only the API compiles job files; a worker's pool starts no thread unless asked.
    const offLoop = new OffLoop(config.offLoop, opts.api ? config.offLoop.threads : 0);
    stops.push(() => offLoop.close());
    const deps: Deps = { orm, pool, store, config, secretBox: await resolveSecretBox(config, log), offLoop };
    metrics = new KilnMetrics();
    const kilnMetrics = metrics;
    stops.push(async () => kilnMetrics.close());
    metrics.watchDatabase(opsPool);
    const backend =
      opts.backend ??
      (config.executor === 'noop'
        ? new NoopBackend()
        : new DockerBackend(undefined, {
            pullTimeoutMs: config.runner.pullTimeoutMs,
            registryAuth: config.runner.registryAuth,
            stopGraceMs: config.runner.stopGraceMs,
          }));

    // A worker takes executions only while its engine answers; the first check warns at once when
    // it does not (a new user without Docker running learns it here, not from a failed job).
    let gate: EngineGate | null = null;
    if (opts.worker) {
      const engineGate = new EngineGate(backend, log);
      gate = engineGate;
      stops.push(async () => engineGate.stop());
      await engineGate.start();
      interrupted();
    }
    readiness = processReadiness({ pool: opsPool, store, engine: gate, log, extra: opts.extraChecks });
    const ops: OpsEndpoints = { readiness, metrics, log };
    if (opts.worker) {
      const runner = await startRunnerRuntime({
        pool, backend, store, log, gate: gate ?? undefined,
        connection: { connectionString: databaseUrl, application_name: `kiln cancel listener ${config.workerId}`.slice(0, 63) },
        secretBox: deps.secretBox,
        settings: config.runner,
        workerId: config.workerId,
      });
      stops.push(() => runner.stop());
      interrupted();
      worker = await startWorker({
        pool, store, backend, log,
        runner: runner.services,
        workerId: config.workerId,
        concurrency: config.workerConcurrency,
        maxRunningPerOwner: config.maxRunningPerOwner,
        pollIntervalMs: config.pollIntervalMs,
        defaultImage: config.defaultImage,
        leaseMs: config.leaseMs,
        misfireGraceMs: config.misfireGraceMs,
        runAllMax: config.runAllMax,
        retryBaseMs: config.retryBaseMs,
        tickRetentionMs: config.tickRetentionMs,
        metrics,
        gate: gate ?? undefined,
        // The API's own address once it listens (PORT=0 picks one), in a process that has both roles.
        notify: { settings: config.notify, publicUrl: () => config.web.publicUrl ?? http?.url ?? `http://${config.host}:${config.port}` },
      });
      // A stop asked for while it started: its drain begins now.
      if (opts.stopRequest?.requested) void stopWorker(opts.stopRequest.graceMs ?? config.shutdownGraceMs);
      const waiting = gate?.up === false ? `; none until ${backend.description} answers` : '';
      log(`worker ${config.workerId} running up to ${config.workerConcurrency} executions at once (${config.executor} executor)${waiting}`, { workerId: config.workerId });
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
      const schema = await buildKilnSchema();
      interrupted();
      http = await startHttp({
        deps, log, auth,
        verifier: createVerifier(auth),
        schema,
        host: config.host,
        port: config.port,
        ops,
      });
      log(`GraphQL at ${http.url}/graphql, REST at ${http.url}/api/v1`);
    }
    interrupted();
    return { deps, databaseUrl, auth, http, worker, metrics, readiness, engine: gate, opsServer, stop: stopAll };
  } catch (err) {
    await stopAll({ graceMs: opts.stopRequest?.graceMs ?? config.shutdownGraceMs });
    throw err;
  } finally {
    unwatch();
  }
}
