import { availableParallelism, hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import path from 'node:path';
import type { AuthConfig } from './auth/types.js';
import { ConfigError } from './errors.js';
import { LOG_LEVELS, type ConfiguredLogLevel } from './util/log.js';
import { defaultRunnerSettings, type RegistryCredentials, type RunnerSettings } from './runner/settings.js';
import { MAX_SECRETS_PER_JOB } from './jobfile/lint.js';
import { parseMemory } from './jobfile/values.js';
import { formatDuration, parseDuration } from './schedule/duration.js';
import { imagePatternProblem } from './runner/registryAccess.js';

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

const LOCAL_ISSUER = 'kiln-local';
const LOCAL_AUDIENCE = 'kiln';

type Env = Record<string, string | undefined>;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a valid URL: "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return raw;
}

/** 127.0.0.0/8, ::1 and localhost: an address no one between Kiln and the peer can intercept. */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * The identity provider's key set: https, so that no one on the way can hand Kiln keys of their
 * own (security review L4); plain http only on loopback (a provider on the same host, tests).
 */
function jwksUrlOf(env: Env): string | undefined {
  const raw = url(env, 'KILN_JWKS_URL', ['http:', 'https:']);
  if (raw === undefined) return undefined;
  const parsed = new URL(raw);
  if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
    throw new ConfigError('KILN_JWKS_URL', `must use https: (http: only on 127.0.0.1, ::1 or localhost), got "${raw}"`);
  }
  return raw;
}

function loadAuth(env: Env): AuthConfig | null {
  const secret = str(env, 'KILN_JWT_SECRET');
  const jwksUrl = jwksUrlOf(env);
  if (secret !== undefined && jwksUrl !== undefined) {
    throw new ConfigError('KILN_JWT_SECRET', 'set either KILN_JWT_SECRET (local mode) or KILN_JWKS_URL (identity provider), not both');
  }
  if (jwksUrl !== undefined) {
    const issuer = str(env, 'KILN_JWT_ISSUER');
    const audience = str(env, 'KILN_JWT_AUDIENCE');
    if (!issuer) throw new ConfigError('KILN_JWT_ISSUER', 'is required with KILN_JWKS_URL');
    if (!audience) throw new ConfigError('KILN_JWT_AUDIENCE', 'is required with KILN_JWKS_URL');
    const algorithms = (str(env, 'KILN_JWT_ALGORITHMS') ?? 'RS256').split(',').map((a) => a.trim()).filter(Boolean);
    const bad = algorithms.find((a) => a === 'none' || a.startsWith('HS'));
    if (bad) throw new ConfigError('KILN_JWT_ALGORITHMS', `"${bad}" is not allowed with a JWKS (asymmetric algorithms only)`);
    return { mode: 'jwks', jwksUrl, issuer, audience, algorithms };
  }
  if (secret !== undefined) {
    const bytes = new TextEncoder().encode(secret);
    if (bytes.length < 32) throw new ConfigError('KILN_JWT_SECRET', `must be at least 32 bytes, got ${bytes.length}`);
    return localAuth(bytes, env);
  }
  return null;
}

/** Local-mode auth for a secret (from the environment or the data directory). */
export function localAuth(secret: Uint8Array, env: Env = {}): AuthConfig {
  return {
    mode: 'local',
    secret,
    issuer: str(env, 'KILN_JWT_ISSUER') ?? LOCAL_ISSUER,
    audience: str(env, 'KILN_JWT_AUDIENCE') ?? LOCAL_AUDIENCE,
  };
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

/** A size (`512m`, `1g`, `1Gi`, or bytes) of at least `min` bytes. */
function size(env: Env, name: string, def: number, min = 1): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const bytes = /^\d+$/.test(raw) ? Number(raw) : parseMemory(raw);
  if (typeof bytes === 'string') throw new ConfigError(name, bytes);
  if (bytes < min) throw new ConfigError(name, `must be at least ${min} bytes, got ${bytes}`);
  return bytes;
}

/** A duration (`30d`, `12h`, `1h30m`) of at least `min` milliseconds. */
function duration(env: Env, name: string, def: number, min: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const parsed = parseDuration(raw);
  if (!parsed.ok) throw new ConfigError(name, parsed.error);
  if (parsed.value < min) throw new ConfigError(name, `must be at least ${formatDuration(min)}, got ${raw}`);
  return parsed.value;
}

function cpus(env: Env, name: string, def: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || n <= 0 || n > 1024) throw new ConfigError(name, `must be a number of CPUs greater than 0, got "${raw}"`);
  return n;
}

function list(env: Env, name: string, def: string[], check: (item: string) => string | null): string[] {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const items = raw.split(/[,:\s]+/).filter(Boolean);
  for (const item of items) {
    const problem = check(item);
    if (problem) throw new ConfigError(name, problem);
  }
  return items;
}

/** A list of CIDRs (`10.0.0.0/8, fd00::/8`; a bare address is one host), by commas or spaces. */
function cidrs(env: Env, name: string): string[] {
  const raw = str(env, name);
  if (raw === undefined) return [];
  const items = raw.split(/[,\s]+/).filter(Boolean);
  for (const item of items) {
    const [address = '', prefix, extra] = item.split('/');
    const family = isIP(address);
    const max = family === 6 ? 128 : 32;
    const ok = family !== 0 && extra === undefined && (prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= max));
    if (!ok) throw new ConfigError(name, `"${item}" is not an address or a CIDR block such as 10.0.0.0/8 or fd00::/8`);
  }
  return items;
}

function registryAuth(env: Env): Record<string, RegistryCredentials> {
  const raw = str(env, 'KILN_REGISTRY_AUTH');
  if (raw === undefined) return {};
  const bad = (why: string) => new ConfigError('KILN_REGISTRY_AUTH', `${why}; expected JSON such as {"registry.example.com": {"username": "u", "password": "p"}}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw bad('is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('is not an object');
  const out: Record<string, RegistryCredentials> = {};
  for (const [host, creds] of Object.entries(parsed)) {
    const c = creds as Record<string, unknown>;
    if (typeof c !== 'object' || c === null) throw bad(`the entry for "${host}" is not an object`);
    for (const key of Object.keys(c)) if (!['username', 'password', 'identitytoken'].includes(key)) throw bad(`unknown key "${key}" for "${host}"`);
    if (Object.values(c).some((v) => typeof v !== 'string')) throw bad(`the values for "${host}" must be strings`);
    out[host] = c as RegistryCredentials;
  }
  return out;
}

/** Why `p` may not be in KILN_GIT_PROTOCOLS, or null. */
function gitTransportProblem(p: string): string | null {
  if (p === 'file') return '"file" is not a network transport: allow a directory with KILN_GIT_LOCAL_ROOT instead';
  return /^[a-z][a-z0-9+.-]*$/.test(p) && p !== 'ext' ? null : `"${p}" is not an allowed git transport`;
}

/** An absolute path without `..`, normalised (no trailing slash). */
function absolutePath(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  if (!raw.startsWith('/') || raw.split('/').includes('..')) throw new ConfigError(name, `must be an absolute path without "..", got "${raw}"`);
  return raw.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
}

/** A docker network name (`none` refuses every checkout over the network). */
function dockerNetwork(env: Env, name: string, def: string): string {
  const raw = str(env, name) ?? def;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(raw)) throw new ConfigError(name, `"${raw}" is not a docker network name`);
  if (raw === 'host') throw new ConfigError(name, 'the host network would give the checkout the worker host\'s own network view');
  return raw;
}

/**
 * KILN_REGISTRY_AUTH_IMAGES: which images every user may pull with the operator's credentials.
 * Required with KILN_REGISTRY_AUTH: without it, any user could pull (and run) any private image
 * the operator's account can read (security review M4).
 */
function registryAuthImages(env: Env, auth: Record<string, RegistryCredentials>): string[] {
  const raw = str(env, 'KILN_REGISTRY_AUTH_IMAGES');
  if (raw === undefined) {
    if (Object.keys(auth).length === 0) return [];
    throw new ConfigError(
      'KILN_REGISTRY_AUTH_IMAGES',
      'is required with KILN_REGISTRY_AUTH: the images every user may pull with these credentials, e.g. "docker.io/library/*,registry.example.com/shared/*" ("*" for all)',
    );
  }
  const patterns = raw.split(/[,\s]+/).filter(Boolean);
  for (const p of patterns) {
    const problem = imagePatternProblem(p);
    if (problem) throw new ConfigError('KILN_REGISTRY_AUTH_IMAGES', problem);
  }
  return patterns;
}

function loadRunner(env: Env): Readonly<RunnerSettings> {
  const d = defaultRunnerSettings();
  const maxCpus = cpus(env, 'KILN_MAX_CPUS', d.maxCpus);
  const defaultCpus = cpus(env, 'KILN_DEFAULT_CPUS', Math.min(d.defaultCpus, maxCpus));
  if (defaultCpus > maxCpus) throw new ConfigError('KILN_DEFAULT_CPUS', `must not exceed KILN_MAX_CPUS (${maxCpus})`);
  const maxMemoryBytes = size(env, 'KILN_MAX_MEMORY', d.maxMemoryBytes, 4 * 1024 * 1024);
  const defaultMemoryBytes = size(env, 'KILN_DEFAULT_MEMORY', Math.min(d.defaultMemoryBytes, maxMemoryBytes), 4 * 1024 * 1024);
  if (defaultMemoryBytes > maxMemoryBytes) throw new ConfigError('KILN_DEFAULT_MEMORY', `must not exceed KILN_MAX_MEMORY (${maxMemoryBytes} bytes)`);
  const maxLog = str(env, 'KILN_MAX_LOG_BYTES');
  const auth = registryAuth(env);
  return Object.freeze({
    allowBridge: bool(env, 'KILN_ALLOW_BRIDGE', d.allowBridge),
    defaultCpus,
    maxCpus,
    defaultMemoryBytes,
    maxMemoryBytes,
    pidsLimit: int(env, 'KILN_PIDS_LIMIT', d.pidsLimit, 16, 1_000_000),
    nofileLimit: int(env, 'KILN_NOFILE_LIMIT', d.nofileLimit, 64, 1_048_576),
    readOnlyRootfs: bool(env, 'KILN_READ_ONLY_ROOTFS', d.readOnlyRootfs),
    writablePaths: list(env, 'KILN_WRITABLE_PATHS', d.writablePaths, (p) =>
      p.startsWith('/') && !p.split('/').includes('..') && p !== '/' ? null : `"${p}" is not an absolute path below /`,
    ),
    user: str(env, 'KILN_CONTAINER_USER') ?? d.user,
    stopGraceMs: int(env, 'KILN_STOP_GRACE_MS', d.stopGraceMs, 0, 600_000),
    maxLogBytes: maxLog === '0' ? null : size(env, 'KILN_MAX_LOG_BYTES', d.maxLogBytes ?? 0, 1024),
    maxArtifactBytes: size(env, 'KILN_MAX_ARTIFACT_BYTES', d.maxArtifactBytes, 1024),
    maxExecutionArtifactBytes: size(env, 'KILN_MAX_EXECUTION_ARTIFACT_BYTES', d.maxExecutionArtifactBytes, 1024),
    ownerStorageQuotaBytes: str(env, 'KILN_OWNER_STORAGE_QUOTA') === '0' ? null : size(env, 'KILN_OWNER_STORAGE_QUOTA', d.ownerStorageQuotaBytes ?? 0, 1024),
    writableMaxBytes: size(env, 'KILN_WRITABLE_MAX_BYTES', d.writableMaxBytes, 1024 * 1024),
    pullTimeoutMs: int(env, 'KILN_PULL_TIMEOUT_MS', d.pullTimeoutMs, 1000, 3_600_000),
    registryAuth: Object.freeze(auth),
    registryAuthImages: Object.freeze(registryAuthImages(env, auth)),
    reapIntervalMs: int(env, 'KILN_REAP_INTERVAL_MS', d.reapIntervalMs, 100, 3_600_000),
    gitProtocols: list(env, 'KILN_GIT_PROTOCOLS', d.gitProtocols, gitTransportProblem),
    gitLocalRoot: absolutePath(env, 'KILN_GIT_LOCAL_ROOT') ?? d.gitLocalRoot,
    gitImage: str(env, 'KILN_GIT_IMAGE') ?? d.gitImage,
    checkoutNetwork: dockerNetwork(env, 'KILN_CHECKOUT_NETWORK', d.checkoutNetwork),
    checkoutMaxFiles: int(env, 'KILN_CHECKOUT_MAX_FILES', d.checkoutMaxFiles, 1, 100_000_000),
    checkoutMaxBytes: size(env, 'KILN_CHECKOUT_MAX_BYTES', d.checkoutMaxBytes, 1024 * 1024),
    checkoutTimeoutMs: int(env, 'KILN_CHECKOUT_TIMEOUT_MS', d.checkoutTimeoutMs, 1000, 24 * 3_600_000),
    sshKnownHostsFile: absolutePath(env, 'KILN_SSH_KNOWN_HOSTS') ?? d.sshKnownHostsFile,
  });
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
  return Object.freeze({
    databaseUrl,
    embeddedPgPort: int(env, 'KILN_EMBEDDED_PG_PORT', 54329, 1, 65535),
    host: str(env, 'HOST') ?? '127.0.0.1',
    port: int(env, 'PORT', 4000, 0, 65535),
    dataDir: path.resolve(str(env, 'KILN_DATA_DIR') ?? '.kiln'),
    auth: loadAuth(env),
    s3: loadS3(env),
    defaultImage: str(env, 'KILN_DEFAULT_IMAGE') ?? 'golang:1.23',
    workerConcurrency: int(env, 'KILN_WORKER_CONCURRENCY', 4, 1, 256),
    maxRunningPerOwner: int(env, 'KILN_MAX_RUNNING_PER_OWNER', 0, 0, 100_000),
    workerPort,
    logLevel: logLevel as ConfiguredLogLevel,
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
  });
}
