import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import path from 'node:path';
import type { AuthConfig } from './auth/types.js';
import { loadAuth, localTokenClaims } from './config/auth.js';
import { bool, cidrs, duration, type Env, int, size, str, url } from './config/env.js';
import { loadRunner } from './config/runner.js';
import { loadNotify, type NotifySettings } from './config/notify.js';
import { loadWeb, type WebSettings } from './config/web.js';
import { ConfigError } from './errors.js';
import { MAX_SECRETS_PER_JOB } from './jobfile/lint.js';
import type { RunnerSettings } from './runner/settings.js';
import { LOG_FORMATS, LOG_LEVELS, type ConfiguredLogLevel, type LogFormat } from './util/log.js';

export { localAuth } from './config/auth.js';

/** The S3-compatible store's settings; credentials come from the standard `AWS_*` chain. */
export interface S3Config {
  bucket: string;
  endpoint: string | null;
  region: string;
  forcePathStyle: boolean;
}

/**
 * Kiln's whole configuration, read once from the environment by {@link loadConfig}.
 * This module is the only reader of `process.env`.
 */
export interface Config {
  /** Postgres connection string; null = start an embedded Postgres under `dataDir`. */
  databaseUrl: string | null;
  /** Port of the embedded Postgres (KILN_EMBEDDED_PG_PORT). */
  embeddedPgPort: number;
  host: string;
  port: number;
  dataDir: string;
  /**
   * How tokens are verified. null = local mode with a secret that `kiln start` creates under
   * `dataDir` on first run.
   */
  auth: AuthConfig | null;
  /** The `iss` and `aud` of local-mode tokens, the data directory's secret's included (KILN_JWT_ISSUER, KILN_JWT_AUDIENCE). */
  localTokenClaims: { issuer: string; audience: string };
  /** null = a local directory under `dataDir`. */
  s3: S3Config | null;
  defaultImage: string;
  workerConcurrency: number;
  /**
   * KILN_MAX_RUNNING_PER_OWNER: most executions of one owner RUNNING at once across all workers
   * (0 = no cap). Claims then take one advisory lock each, so the cap is exact.
   */
  maxRunningPerOwner: number;
  /**
   * Port of `kiln worker`'s own listener for /healthz, /readyz and /metrics (KILN_WORKER_PORT, on
   * HOST; 0 picks a free one). null: no listener. `kiln start` serves them on the API port instead.
   */
  workerPort: number | null;
  /** Level of Kiln's JSON log on stderr (KILN_LOG_LEVEL). */
  logLevel: ConfiguredLogLevel;
  /** Shape of that log (KILN_LOG_FORMAT): auto (readable on a terminal, else JSON), json or pretty. */
  logFormat: LogFormat;
  /**
   * How long a stopping worker lets its running executions finish before it stops their containers
   * and hands them back to the queue (KILN_SHUTDOWN_GRACE_MS).
   */
  shutdownGraceMs: number;
  /** Identifies this worker process in container labels and leases. */
  workerId: string;
  /** `docker` runs containers; `noop` completes executions without Docker (benchmarks, scheduler tests). */
  executor: 'docker' | 'noop';
  /** How often idle graphile-worker workers look for due jobs; new jobs wake them at once. */
  pollIntervalMs: number;
  /**
   * How long a worker's claim on a running execution holds without a heartbeat. Past it the
   * execution is re-queued as its next attempt; the worker kills its own container first.
   */
  leaseMs: number;
  /** A fire time later than this when the scheduler reaches it counts as missed (misfire policy). */
  misfireGraceMs: number;
  /** At most this many catch-up runs per job and pass under `misfire: run_all`. */
  runAllMax: number;
  /** First retry delay; each further retry doubles it (capped at 10 minutes). */
  retryBaseMs: number;
  production: boolean;
  /** GraphQL introspection (KILN_GRAPHQL_INTROSPECTION); on by default, off when NODE_ENV=production. */
  introspection: boolean;
  /** The playground at `/playground` and for browsers at `/graphql` (KILN_PLAYGROUND); on by default, off in production. */
  playground: boolean;
  /** What every GraphQL operation must stay within, over HTTP and over the socket alike. */
  queryLimits: QueryLimits;
  /**
   * WebSocket keep-alive (KILN_WS_KEEPALIVE_MS): the server pings each socket this often and
   * drops one that has neither answered nor read anything by the next ping. 0 turns it off.
   */
  wsKeepAliveMs: number;
  /**
   * Requests per caller (token `sub`, else client address) to GraphQL, REST and socket
   * operations, one budget across all API processes on the database (KILN_RATE_LIMIT_RPS,
   * KILN_RATE_LIMIT_BURST); rps 0 turns it off (docs/design.md#socket-limits).
   */
  rateLimit: Readonly<{ rps: number; burst: number }>;
  /**
   * Reverse proxies whose `X-Forwarded-For` is believed (KILN_TRUSTED_PROXIES, CIDRs): the client
   * is the right-most address not in them. Empty: the header is ignored.
   */
  trustedProxies: readonly string[];
  /** What one WebSocket may hold or cost (docs/design.md#socket-limits). */
  sockets: Readonly<SocketLimits>;
  /** How the worker hardens and limits containers (README, "Containers"). */
  runner: Readonly<RunnerSettings>;
  /** The worker threads that compile job files and compute schedules off the API's loop. */
  offLoop: Readonly<OffLoopSettings>;
  /** Most secrets one owner may store (KILN_MAX_SECRETS_PER_OWNER); see docs/design.md#quotas. */
  maxSecretsPerOwner: number;
  /** Most secrets one job may list (KILN_MAX_SECRETS_PER_JOB): each is masked in every byte of its output. */
  maxSecretsPerJob: number;
  /** Ticks (the fire-time ledger) older than this are pruned by housekeeping (KILN_TICK_RETENTION). */
  tickRetentionMs: number;
  /** Key that seals stored secrets (KILN_SECRETS_KEY: 32 bytes, base64 or hex); null = a key file in `dataDir`. */
  secretsKey: Uint8Array | null;
  /** Browser sign-in and sessions (docs/design.md#web-sessions). */
  web: Readonly<WebSettings>;
  /** Notification delivery: allowed private targets, SMTP (docs/design.md#notifications). */
  notify: Readonly<NotifySettings>;
}

/** How the API's off-loop pool is sized and bounded (docs/design.md#off-the-loop). */
export interface OffLoopSettings {
  /** Worker threads compiling job files and computing schedules (KILN_OFFLOOP_THREADS). */
  threads: number;
  /** Most time one compile or schedule computation may run before it is stopped and refused (KILN_COMPILE_BUDGET_MS). */
  budgetMs: number;
  /** Most job files of one user compiling or waiting at once; more are refused (KILN_COMPILE_QUEUE_PER_USER). */
  compilesPerUser: number;
}

/**
 * Limits on one GraphQL operation: graphql-armor's depth, alias and directive rules, graphql-js's
 * token limit, and Kiln's cost rule (docs/design.md#query-cost).
 */
export interface QueryLimits {
  /** Deepest field nesting (KILN_GRAPHQL_MAX_DEPTH). */
  maxDepth: number;
  /** Most aliases (KILN_GRAPHQL_MAX_ALIASES). */
  maxAliases: number;
  /** Most rows (objects and list items) an operation may return at worst (KILN_QUERY_MAX_ROWS). */
  maxRows: number;
  /** Most bytes an operation's answer may hold at worst (KILN_QUERY_MAX_BYTES). */
  maxBytes: number;
  /**
   * Most bytes of one page of `Execution.logs`, each line counted as its text plus a fixed
   * overhead (KILN_LOG_PAGE_MAX_BYTES): a page stops there and the client goes on from its last seq.
   */
  logPageMaxBytes: number;
  /** Most directives (KILN_GRAPHQL_MAX_DIRECTIVES). */
  maxDirectives: number;
  /** Most lexical tokens in the document (KILN_GRAPHQL_MAX_TOKENS). */
  maxTokens: number;
}

/** Caps on WebSockets, each per API process. */
export interface SocketLimits {
  /** Open sockets one user may hold (KILN_WS_MAX_PER_USER); 0 = no cap. */
  maxPerUser: number;
  /** Sockets from one address not yet past connection_init (KILN_WS_MAX_PENDING_PER_ADDRESS); 0 = no cap. */
  maxPendingPerAddress: number;
  /** Unsent bytes past which a socket is not read from (KILN_WS_MAX_BUFFERED). */
  maxBufferedBytes: number;
  /** How long a socket may stay past maxBufferedBytes before it is closed (KILN_WS_STALL_MS). */
  stallMs: number;
}

function loadS3(env: Env): S3Config | null {
  const bucket = str(env, 'S3_BUCKET');
  const endpoint = url(env, 'S3_ENDPOINT', ['http:', 'https:']) ?? null;
  if (bucket === undefined) {
    if (endpoint !== null) throw new ConfigError('S3_BUCKET', 'is required when S3_ENDPOINT is set');
    return null;
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError('S3_BUCKET', `"${bucket}" is not a valid bucket name`);
  }
  return {
    bucket,
    endpoint,
    region: str(env, 'S3_REGION') ?? str(env, 'AWS_REGION') ?? 'us-east-1',
    forcePathStyle: bool(env, 'S3_FORCE_PATH_STYLE', endpoint !== null),
  };
}

function loadQueryLimits(env: Env): Readonly<QueryLimits> {
  // One 10,000-line log page (10,001 rows) or 100 executions with 100 steps each (10,202) fit,
  // two log pages do not. 32 MiB holds that page of executions even with the longest step names
  // a job file allows; a log page stops at 8 MiB (docs/design.md#query-cost).
  const maxBytes = size(env, 'KILN_QUERY_MAX_BYTES', 32 * 1024 * 1024, 1024 * 1024);
  const logPageMaxBytes = size(env, 'KILN_LOG_PAGE_MAX_BYTES', Math.min(8 * 1024 * 1024, maxBytes), 64 * 1024);
  if (logPageMaxBytes > maxBytes) throw new ConfigError('KILN_LOG_PAGE_MAX_BYTES', `must not exceed KILN_QUERY_MAX_BYTES (${maxBytes} bytes), or no page of logs could be asked for`);
  return Object.freeze({
    maxDepth: int(env, 'KILN_GRAPHQL_MAX_DEPTH', 12, 2, 100),
    maxAliases: int(env, 'KILN_GRAPHQL_MAX_ALIASES', 15, 0, 1000),
    maxRows: int(env, 'KILN_QUERY_MAX_ROWS', 20_000, 100, 100_000_000),
    maxBytes,
    logPageMaxBytes,
    maxDirectives: int(env, 'KILN_GRAPHQL_MAX_DIRECTIVES', 50, 0, 1000),
    maxTokens: int(env, 'KILN_GRAPHQL_MAX_TOKENS', 5000, 100, 1_000_000),
  });
}

function secretsKey(env: Env): Uint8Array | null {
  const raw = str(env, 'KILN_SECRETS_KEY');
  if (raw === undefined) return null;
  const key = /^[0-9a-f]{64}$/i.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (key.length !== 32) throw new ConfigError('KILN_SECRETS_KEY', `must be 32 bytes in base64 or hex (e.g. \`openssl rand -base64 32\`), got ${key.length}`);
  return new Uint8Array(key);
}

/** Reads and validates the configuration; throws ConfigError naming the bad variable. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  if (str(env, 'KILN_GRAPHQL_MAX_COST') !== undefined) {
    throw new ConfigError('KILN_GRAPHQL_MAX_COST', 'is no longer read: the cost of a request is now counted in rows and bytes (KILN_QUERY_MAX_ROWS, KILN_QUERY_MAX_BYTES)');
  }
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']) ?? null;
  const executor = str(env, 'KILN_EXECUTOR') ?? 'docker';
  if (executor !== 'docker' && executor !== 'noop') {
    throw new ConfigError('KILN_EXECUTOR', `must be "docker" or "noop", got "${executor}"`);
  }
  const dockerHost = str(env, 'DOCKER_HOST');
  if (dockerHost !== undefined && !/^(unix|tcp|npipe|http|https|ssh):\/\//.test(dockerHost)) {
    throw new ConfigError('DOCKER_HOST', `must be a unix://, tcp:// or ssh:// address, got "${dockerHost}"`);
  }
  const workerPort = str(env, 'KILN_WORKER_PORT') === undefined ? null : int(env, 'KILN_WORKER_PORT', 0, 0, 65535);
  const logLevel = (str(env, 'KILN_LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('KILN_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const logFormat = (str(env, 'KILN_LOG_FORMAT') ?? 'auto').toLowerCase();
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    throw new ConfigError('KILN_LOG_FORMAT', `must be one of ${LOG_FORMATS.join(', ')}, got "${logFormat}"`);
  }
  const web = loadWeb(env);
  return Object.freeze({
    databaseUrl,
    embeddedPgPort: int(env, 'KILN_EMBEDDED_PG_PORT', 54329, 1, 65535),
    host: str(env, 'HOST') ?? '127.0.0.1',
    port: int(env, 'PORT', 4000, 0, 65535),
    dataDir: path.resolve(str(env, 'KILN_DATA_DIR') ?? '.kiln'),
    auth: loadAuth(env),
    localTokenClaims: localTokenClaims(env),
    s3: loadS3(env),
    defaultImage: str(env, 'KILN_DEFAULT_IMAGE') ?? 'golang:1.23',
    workerConcurrency: int(env, 'KILN_WORKER_CONCURRENCY', 4, 1, 256),
    maxRunningPerOwner: int(env, 'KILN_MAX_RUNNING_PER_OWNER', 0, 0, 100_000),
    workerPort,
    logLevel: logLevel as ConfiguredLogLevel,
    logFormat: logFormat as LogFormat,
    shutdownGraceMs: int(env, 'KILN_SHUTDOWN_GRACE_MS', 30_000, 0, 3_600_000),
    workerId: str(env, 'KILN_WORKER_ID') ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    executor,
    pollIntervalMs: int(env, 'KILN_POLL_INTERVAL_MS', 1000, 50, 60_000),
    leaseMs: int(env, 'KILN_LEASE_MS', 6000, 1000, 600_000),
    misfireGraceMs: int(env, 'KILN_MISFIRE_GRACE_MS', 5000, 0, 86_400_000),
    runAllMax: int(env, 'KILN_RUN_ALL_MAX', 100, 1, 10_000),
    retryBaseMs: int(env, 'KILN_RETRY_BASE_MS', 2000, 0, 3_600_000),
    production: str(env, 'NODE_ENV') === 'production',
    introspection: bool(env, 'KILN_GRAPHQL_INTROSPECTION', str(env, 'NODE_ENV') !== 'production'),
    playground: bool(env, 'KILN_PLAYGROUND', str(env, 'NODE_ENV') !== 'production'),
    queryLimits: loadQueryLimits(env),
    wsKeepAliveMs: int(env, 'KILN_WS_KEEPALIVE_MS', 12_000, 0, 3_600_000),
    // 50/s sustained with bursts of 200 is far above what a person, the CLI or a dashboard does,
    // and well below what starves other users of one API process.
    rateLimit: Object.freeze({
      rps: int(env, 'KILN_RATE_LIMIT_RPS', 50, 0, 1_000_000),
      burst: int(env, 'KILN_RATE_LIMIT_BURST', 200, 1, 1_000_000),
    }),
    trustedProxies: Object.freeze(cidrs(env, 'KILN_TRUSTED_PROXIES')),
    // A person's browser tabs, CLI followers and dashboards stay far below 32 sockets; 64 sockets
    // still waiting for connection_init from one address is many simultaneous logins behind one NAT.
    sockets: Object.freeze({
      maxPerUser: int(env, 'KILN_WS_MAX_PER_USER', 32, 0, 100_000),
      maxPendingPerAddress: int(env, 'KILN_WS_MAX_PENDING_PER_ADDRESS', 64, 0, 100_000),
      maxBufferedBytes: size(env, 'KILN_WS_MAX_BUFFERED', 1024 * 1024, 64 * 1024),
      stallMs: int(env, 'KILN_WS_STALL_MS', 15_000, 100, 3_600_000),
    }),
    runner: loadRunner(env),
    // One thread on a 2-core machine (the other core is the API's and the worker's), two at most:
    // the pool exists to keep the loops free, not to compile fast.
    offLoop: Object.freeze({
      threads: int(env, 'KILN_OFFLOOP_THREADS', Math.min(2, Math.max(1, availableParallelism() - 1)), 1, 64),
      budgetMs: int(env, 'KILN_COMPILE_BUDGET_MS', 2000, 50, 600_000),
      compilesPerUser: int(env, 'KILN_COMPILE_QUEUE_PER_USER', 4, 1, 1000),
    }),
    maxSecretsPerOwner: int(env, 'KILN_MAX_SECRETS_PER_OWNER', 100, 1, 100_000),
    maxSecretsPerJob: int(env, 'KILN_MAX_SECRETS_PER_JOB', MAX_SECRETS_PER_JOB, 1, 100_000),
    tickRetentionMs: duration(env, 'KILN_TICK_RETENTION', 30 * 86_400_000, 3_600_000),
    secretsKey: secretsKey(env),
    web,
    notify: loadNotify(env, web.publicUrl),
  });
}
