import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeVersionProblem, REQUIRED_NODE } from '../bin/nodeVersion.js';
import { readLocalSecret } from '../src/auth/localSecret.js';
import { mintLocalToken } from '../src/auth/token.js';
import { startKiln } from '../src/app.js';
import { parseTokenArgs } from '../src/cli/tokenArgs.js';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { ArtifactError } from '../src/runner/artifacts.js';
import { DockerBackend } from '../src/runner/docker/docker.js';
import { runErrorText } from '../src/runner/infrastructure.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { createTestDatabase } from './helpers/db.js';
import { testContainerConfig } from './helpers/docker.js';
import { startKilnProcess } from './helpers/processes.js';
import { startTestKiln, TEST_SECRET, waitFor, type TestKiln } from './helpers/kiln.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'bin/kiln.js');
/** Node 20 on these machines and in CI (see STACK.md). */
const SYSTEM_NODE = '/usr/bin/node';

describe('the Node version Kiln needs', () => {
  it.each([
    ['20.20.2', false],
    ['v20.20.2', false],
    ['22.17.9', false],
    ['21.99.99', false],
    ['22.18.0', true],
    ['22.19.1', true],
    ['23.0.0', true],
    ['24.11.0', true],
  ])('Node %s can run Kiln: %s', (version, ok) => {
    const problem = nodeVersionProblem(version);
    if (ok) expect(problem).toBeNull();
    else expect(problem).toMatch(new RegExp(`^Kiln needs Node\\.js 22\\.18\\.0 or newer; this is Node\\.js v${version.replace(/^v/, '').replaceAll('.', '\\.')} \\(`));
  });

  it("is the version package.json's engines names", () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(`>=${REQUIRED_NODE}`).toBe(pkg.engines.node.replace(/^>=(\d+\.\d+)$/, '>=$1.0'));
  });

  it("makes `npm ci` refuse a Node older than package.json's engines (the committed .npmrc)", async () => {
    // This Node is new enough for Kiln, so the project is copied with an engines range no Node meets.
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-engines-'));
    try {
      const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(path.join(dir, 'package.json'), JSON.stringify({ ...pkg, engines: { node: '>=99' } }));
      await writeFile(path.join(dir, 'package-lock.json'), readFileSync(path.join(ROOT, 'package-lock.json')));
      await writeFile(path.join(dir, '.npmrc'), readFileSync(path.join(ROOT, '.npmrc')));
      // npm on this Node; --offline and --dry-run: nothing is fetched and nothing installed.
      const env = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` };
      const r = spawnSync('npm', ['ci', '--dry-run', '--offline', '--no-audit', '--no-fund'], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/npm error code EBADENGINE/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it(`answers in one line naming the version needed when run by ${SYSTEM_NODE} if that is older, and runs when not`, () => {
    const version = spawnSync(SYSTEM_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    const tooOld = nodeVersionProblem(version) !== null;
    const r = spawnSync(SYSTEM_NODE, [BIN, tooOld ? 'start' : 'help'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' }, timeout: 30_000 });
    if (tooOld) {
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`kiln: Kiln needs Node.js 22.18.0 or newer; this is Node.js v${version} (${SYSTEM_NODE}). Install Node 22 LTS and run kiln with it.\n`);
    } else {
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^kiln: a CI\/CD job scheduler/);
    }
  });

  it(`makes \`npm start\` with ${SYSTEM_NODE} say the same line if that is older, before its build runs`, () => {
    const version = spawnSync(SYSTEM_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    if (nodeVersionProblem(version) === null) {
      // A Node new enough passes the check that prestart runs first, silently.
      const r = spawnSync(SYSTEM_NODE, [path.join(ROOT, 'bin/checkNode.js')], { encoding: 'utf8' });
      expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
      return;
    }
    const r = spawnSync('npm', ['start'], { cwd: ROOT, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' }, timeout: 60_000 });
    expect(r.status).toBe(1);
    // npm's own lines (stdout) name the script; the build (tsc, vite) never started.
    expect(r.stdout).toMatch(/> node bin\/checkNode\.js && npm run build/);
    expect(r.stdout).not.toMatch(/> kiln@\S+ build/);
    expect(r.stderr).toBe(`kiln: Kiln needs Node.js 22.18.0 or newer; this is Node.js v${version} (${SYSTEM_NODE}). Install Node 22 LTS and run kiln with it.\n`);
  });
});

describe('KILN_JWKS_URL', () => {
  const withIdp = (jwks: string) => ({ KILN_JWKS_URL: jwks, KILN_JWT_ISSUER: 'https://idp.example/', KILN_JWT_AUDIENCE: 'kiln' });

  it.each(['http://idp.example/jwks', 'http://10.0.0.5/jwks', 'http://127.example/jwks', 'http://[fe80::1]/jwks'])('refuses plain http to %s', (jwks) => {
    expect(() => loadConfig(withIdp(jwks))).toThrow(/^KILN_JWKS_URL: must use https: \(http: only on 127\.0\.0\.1, ::1 or localhost\)/);
  });

  it.each(['https://idp.example/jwks', 'http://127.0.0.1:8080/jwks', 'http://127.1.2.3/jwks', 'http://localhost:9000/jwks', 'http://[::1]:9000/jwks'])(
    'accepts %s',
    (jwks) => {
      expect(loadConfig(withIdp(jwks)).auth).toMatchObject({ mode: 'jwks', jwksUrl: jwks });
    },
  );
});

describe('NODE_ENV=production with no authentication configured', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-prod-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses to start an API, before it makes a token secret anyone on the host could mint with', async () => {
    const config = loadConfig({ NODE_ENV: 'production', KILN_DATA_DIR: dataDir, DATABASE_URL: 'postgres://127.0.0.1:1/never' });
    const start = startKiln({ config, api: true, worker: false, log: () => {} });
    await expect(start).rejects.toThrow(ConfigError);
    await expect(start).rejects.toThrow(/^NODE_ENV: production needs configured authentication: set KILN_JWKS_URL, KILN_JWT_ISSUER and KILN_JWT_AUDIENCE/);
    expect(await readdir(dataDir)).toEqual([]);
  });

  it('ends `kiln serve` with that message and exit code 1', async () => {
    const db = await createTestDatabase();
    try {
      const p = startKilnProcess('serve', db.url, 'prod-no-auth', { NODE_ENV: 'production', KILN_JWT_SECRET: '' });
      const code = await new Promise<number | null>((resolve) => p.child.on('exit', resolve));
      expect(code).toBe(1);
      expect(p.output()).toContain('NODE_ENV: production needs configured authentication');
      expect(p.output()).not.toContain('GraphQL at');
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('starts with a configured secret (the check is about a silent fallback, not about local mode)', () => {
    const config = loadConfig({ NODE_ENV: 'production', KILN_JWT_SECRET: TEST_SECRET });
    expect(config.auth).toMatchObject({ mode: 'local', issuer: 'kiln-local', audience: 'kiln' });
  });
});

describe('kiln token', () => {
  it.each([
    [['alice'], { user: 'alice', ttlSeconds: 86_400 }],
    [['--ttl', '1h', 'alice'], { user: 'alice', ttlSeconds: 3600 }],
    [['alice', '--ttl', '90m'], { user: 'alice', ttlSeconds: 5400 }],
    [['--ttl=30s', 'alice'], { user: 'alice', ttlSeconds: 30 }],
  ])('reads %j', (args, request) => {
    expect(parseTokenArgs(args)).toEqual(request);
  });

  it.each([
    [[], /^usage: kiln token <user>/],
    [['--ttl', '1h'], /^usage: kiln token <user>/],
    [['--ttl', 'soon', 'alice'], /^--ttl: "soon" is not a duration/],
    [['alice', 'bob'], /^one user at a time, got "alice", "bob"/],
    [['--tll', '1h', 'alice'], /Unknown option '--tll'/],
  ])('refuses %j', (args, message) => {
    expect(() => parseTokenArgs(args)).toThrow(message);
  });

  it('`kiln token --ttl 1h alice` mints a one-hour token for alice, not for a user named "1h"', () => {
    const r = spawnSync(process.execPath, [BIN, 'token', '--ttl', '1h', 'alice'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', KILN_JWT_SECRET: TEST_SECRET } });
    expect(r.stderr).toBe('');
    const claims = JSON.parse(Buffer.from(r.stdout.trim().split('.')[1], 'base64url').toString()) as { sub: string; iat: number; exp: number; iss: string; aud: string };
    expect(claims).toMatchObject({ sub: 'alice', iss: 'kiln-local', aud: 'kiln' });
    expect(claims.exp - claims.iat).toBe(3600);
  });
});

describe("local-mode tokens on the data directory's secret", () => {
  let k: TestKiln;
  const claims = { KILN_JWT_ISSUER: 'team-kiln', KILN_JWT_AUDIENCE: 'team-api' };
  beforeAll(async () => {
    k = await startTestKiln({ worker: false, env: { KILN_JWT_SECRET: '', ...claims } });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('carry KILN_JWT_ISSUER and KILN_JWT_AUDIENCE, as the README says: `kiln token` writes them and the API wants them', async () => {
    const r = spawnSync(process.execPath, [BIN, 'token', 'alice'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', KILN_DATA_DIR: k.dataDir, ...claims } });
    expect(r.stderr).toBe('');
    const token = r.stdout.trim();
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())).toMatchObject({ sub: 'alice', iss: 'team-kiln', aud: 'team-api' });
    expect((await k.gql('{ me { id } }', {}, token)).data).toEqual({ me: { id: 'alice' } });
    // The same secret with the default claims is not this server's token.
    const secret = (await readLocalSecret(k.dataDir))!;
    const other = await mintLocalToken({ mode: 'local', secret, issuer: 'kiln-local', audience: 'kiln' }, 'alice', 600);
    expect((await k.gql('{ me { id } }', {}, other)).status).toBe(401);
  });
});

describe('a Docker engine that is not running', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-no-engine-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gives a run the error \"the Docker engine at … is not reachable (is it running?)\", not Node's socket error", async () => {
    const socketPath = path.join(dir, 'docker.sock');
    const backend = new DockerBackend({ socketPath });
    const err = await backend.prepare(testContainerConfig()).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/ENOENT/); // what a user would have read before
    expect(runErrorText(err, backend.description)).toBe(`the Docker engine at unix://${socketPath} is not reachable (is it running?)`);
    // Any other error keeps its own words, a socket error of something else (the store) included.
    expect(runErrorText(new Error('image "x" is not available'), backend.description)).toBe('image "x" is not available');
    const storeDown = new ArtifactError('artifact "bin/" could not be stored: connect ECONNREFUSED 127.0.0.1:9000', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', syscall: 'connect' }) });
    expect(runErrorText(storeDown, backend.description)).toBe(storeDown.message);
  });

  it('makes `kiln start` warn at once, naming where it looked (DOCKER_HOST), and /readyz name the engine', async () => {
    const db = await createTestDatabase();
    const dockerHost = `unix://${path.join(dir, 'nowhere.sock')}`;
    const p = startKilnProcess('start', db.url, 'no-engine', { DOCKER_HOST: dockerHost });
    try {
      const startedAt = Date.now();
      await waitFor(async () => (p.output().includes('GraphQL at') ? true : undefined), 30_000, 'kiln start to listen');
      // At start-up, not after a first job failed: the worker thread starts right after the API.
      await waitFor(async () => (p.output().includes('is not reachable') ? true : undefined), 20_000, 'the engine warning');
      expect(p.output()).toContain(`the Docker engine at ${dockerHost} is not reachable (is it running?)`);
      expect(Date.now() - startedAt).toBeLessThan(45_000);
      // One port answers for the process: the API's /readyz names the worker thread's engine.
      const url = /GraphQL at (http:\/\/[^/\s]+)/.exec(p.output())![1];
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ checks: { postgres: 'ok', docker: 'failed' }, failed: ['docker'] });
    } finally {
      await p.stop();
      await db.drop();
    }
  }, 60_000);
});

describe('/readyz, which answers without a token', () => {
  let k: TestKiln;
  const logs: string[] = [];
  let storeDir: string;
  beforeAll(async () => {
    storeDir = await mkdtemp(path.join(tmpdir(), 'kiln-readyz-'));
    // A store that cannot work: its directory is a file. The error names the path, as an S3
    // error names the bucket: what an anonymous prober must not learn.
    const blocked = path.join(storeDir, 'private-bucket-name');
    await writeFile(blocked, '');
    k = await startTestKiln({ worker: false, store: new FilesystemStore(path.join(blocked, 'artifacts')), log: (m) => void logs.push(m) });
  });
  afterAll(async () => {
    await k?.stop();
    await rm(storeDir, { recursive: true, force: true });
  });

  it('names the failed check without its error text, which goes to the log once', async () => {
    const probe = async () => {
      const res = await fetch(`${k.url}/readyz`);
      return { status: res.status, text: await res.text() };
    };
    const first = await probe();
    await probe();
    expect(first.status).toBe(503);
    expect(JSON.parse(first.text)).toEqual({ status: 'not ready', checks: { postgres: 'ok', store: 'failed' }, failed: ['store'] });
    expect(first.text).not.toContain('private-bucket-name');
    const logged = await waitFor(async () => {
      const lines = logs.filter((l) => l.includes('readiness: check "store" fails'));
      return lines.length > 0 ? lines : undefined;
    }, 5000, 'the reason in the log');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('private-bucket-name');
    expect(existsSync(path.join(storeDir, 'private-bucket-name'))).toBe(true);
  });
});
