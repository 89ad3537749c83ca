import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { AuthConfig } from './auth/types.js';
import { ConfigError } from './errors.js';

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
  workerPort: number | null;
  /** Identifies this worker process in container labels and leases. */
  workerId: string;
  /** `docker` runs containers; `noop` completes executions without Docker (benchmarks, scheduler tests). */
  executor: 'docker' | 'noop';
  /** How often idle graphile-worker workers look for due jobs; new jobs wake them at once. */
  pollIntervalMs: number;
  production: boolean;
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

function loadAuth(env: Env): AuthConfig | null {
  const secret = str(env, 'KILN_JWT_SECRET');
  const jwksUrl = url(env, 'KILN_JWKS_URL', ['http:', 'https:']);
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

/** Reads and validates the configuration; throws ConfigError naming the bad variable. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
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
    workerPort,
    workerId: str(env, 'KILN_WORKER_ID') ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    executor,
    pollIntervalMs: int(env, 'KILN_POLL_INTERVAL_MS', 1000, 50, 60_000),
    production: str(env, 'NODE_ENV') === 'production',
  });
}
