import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startKiln, type Kiln } from '../../src/app.js';
import { mintLocalToken } from '../../src/auth/token.js';
import { loadConfig, localAuth } from '../../src/config.js';
import type { Log } from '../../src/util/log.js';
import type { ContainerBackend } from '../../src/runner/types.js';
import type { ArtifactStore } from '../../src/storage/ArtifactStore.js';
import { createTestDatabase } from './db.js';
import { TEST_IMAGE } from './docker.js';

/** The local-mode secret every test Kiln uses. */
export const TEST_SECRET = 'kiln-test-secret-that-is-at-least-32-bytes-long';
/** The key sealing stored secrets in every test Kiln, so processes sharing a database agree. */
export const TEST_SECRETS_KEY = Buffer.alloc(32, 7).toString('base64');

export interface GqlResponse<T = Record<string, unknown>> {
  status: number;
  data?: T;
  errors?: Array<{ message: string; extensions?: { code?: string; diagnostics?: Array<Record<string, unknown>> } }>;
}

export interface TestKiln {
  kiln: Kiln;
  url: string;
  dataDir: string;
  databaseUrl: string;
  token(user: string, ttlSeconds?: number): Promise<string>;
  gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<GqlResponse<T>>;
  stop(): Promise<void>;
}

/**
 * An in-process Kiln (API + worker) on a database of its own, port 0, local auth and a
 * temporary data directory. Extra environment variables override the defaults.
 */
export async function startTestKiln(
  opts: {
    env?: Record<string, string>;
    store?: ArtifactStore;
    backend?: ContainerBackend;
    api?: boolean;
    worker?: boolean;
    /** Run on this database (of another TestKiln) instead of a new one; it is not dropped on stop. */
    databaseUrl?: string;
    /** Also receives Kiln's own log (besides stderr when KILN_TEST_LOG is set). */
    log?: Log;
  } = {},
): Promise<TestKiln> {
  const db = opts.databaseUrl ? { url: opts.databaseUrl, drop: async () => {} } : await createTestDatabase();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-test-'));
  const config = loadConfig({
    DATABASE_URL: db.url,
    KILN_DATA_DIR: dataDir,
    KILN_JWT_SECRET: TEST_SECRET,
    PORT: '0',
    HOST: '127.0.0.1',
    KILN_DEFAULT_IMAGE: TEST_IMAGE,
    KILN_WORKER_CONCURRENCY: '2',
    KILN_POLL_INTERVAL_MS: '200',
    KILN_SECRETS_KEY: TEST_SECRETS_KEY,
    ...opts.env,
  });
  const kiln = await startKiln({
    config,
    api: opts.api ?? true,
    worker: opts.worker ?? true,
    log: (m, fields) => {
      if (process.env.KILN_TEST_LOG) console.error(m);
      opts.log?.(m, fields);
    },
    store: opts.store,
    backend: opts.backend,
  });
  const url = kiln.http?.url ?? '';
  const auth = localAuth(new TextEncoder().encode(TEST_SECRET));
  return {
    kiln,
    url,
    dataDir,
    databaseUrl: db.url,
    token: (user, ttl) => mintLocalToken(auth as Extract<typeof auth, { mode: 'local' }>, user, ttl),
    async gql(query, variables, token) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as GqlResponse<any>;
      return { status: res.status, data: body.data, errors: body.errors };
    },
    async stop() {
      await kiln.stop();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
