import { randomBytes } from 'node:crypto';
import { chmod, type FileHandle, link, mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import path from 'node:path';
import { LoginError, refreshTokens, REQUEST_TIMEOUT_MS, revokeToken, type AudienceParam, type TokenSet } from './oidc.js';

/**
 * What `kiln login` stores: the tokens and everything needed to refresh them without asking
 * again (the token endpoint, the client and audience they were issued for).
 */
export interface StoredCredentials {
  version: 1;
  issuer: string;
  clientId: string;
  audience: string | null;
  audienceParam: AudienceParam;
  scope: string;
  tokenEndpoint: string;
  revocationEndpoint: string | null;
  /** The Kiln server named with `--server` at login, used when a command names none. */
  server: string | null;
  accessToken: string;
  refreshToken: string | null;
  /** ISO time the access token expires, or null when unknown. */
  expiresAt: string | null;
  /** The token's subject (unverified), for messages. */
  subject: string | null;
  obtainedAt: string;
}

/** Refresh this long before the recorded expiry, so a token never expires in flight. */
const EXPIRY_SKEW_MS = 30_000;
/**
 * A lock older than this was left by a process that died (or hangs) while refreshing. A live
 * holder never keeps it this long: its refresh request gives up after REQUEST_TIMEOUT_MS, so
 * twice that plus a margin leaves no doubt. Breaking a live lock would let two processes send
 * the same rotating refresh token, and the provider's reuse detection would end the session.
 * On this machine a lock whose process is gone is stale at once, whatever its age.
 */
export const STALE_LOCK_MS = 2 * REQUEST_TIMEOUT_MS + 30_000;
/** How long to wait for the lock: long enough for an abandoned lock on another host to go stale. */
const LOCK_WAIT_MS = STALE_LOCK_MS + 15_000;
const LOCK_POLL_MS = 100;

/**
 * The credentials file: KILN_CREDENTIALS_FILE, else `$XDG_CONFIG_HOME/kiln/credentials.json`,
 * else `~/.config/kiln/credentials.json` (the XDG default).
 */
export function credentialsPath(env: Record<string, string | undefined>): string {
  if (env.KILN_CREDENTIALS_FILE) return path.resolve(env.KILN_CREDENTIALS_FILE);
  const xdg = env.XDG_CONFIG_HOME;
  // XDG Base Directory: a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || homedir(), '.config');
  return path.join(base, 'kiln', 'credentials.json');
}

/** The stored credentials, or null when there are none. A damaged file is an error, not "none". */
export async function readCredentials(file: string): Promise<StoredCredentials | null> {
  const text = await readCredentialsText(file);
  return text === null ? null : parseCredentials(file, text);
}

/** The file's text, or null when there is none. */
async function readCredentialsText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LoginError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function parseCredentials(file: string, text: string): StoredCredentials {
  let parsed: Partial<StoredCredentials>;
  try {
    parsed = JSON.parse(text) as Partial<StoredCredentials>;
  } catch {
    throw new LoginError(`${file} is not valid JSON: run \`kiln logout\` then \`kiln login\``);
  }
  if (parsed.version !== 1 || typeof parsed.accessToken !== 'string' || typeof parsed.tokenEndpoint !== 'string' || typeof parsed.clientId !== 'string') {
    throw new LoginError(`${file} is not a credentials file this kiln understands: run \`kiln logout\` then \`kiln login\``);
  }
  return parsed as StoredCredentials;
}

/**
 * Writes the file readable by its owner only: the directory is created 0700, the content goes
 * to a 0600 temporary file first and is renamed over the old one, so a reader never sees half
 * a file and the token never sits in a file others can read, not even for a moment.
 */
export async function writeCredentials(file: string, creds: StoredCredentials): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(JSON.stringify(creds, null, 2) + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    // The mode given to open() is filtered by the umask; 0600 is never widened by it, but an
    // explicit chmod makes the guarantee independent of that subtlety.
    await chmod(temp, 0o600);
    await rename(temp, file);
  } catch (err) {
    // The temporary file holds the tokens: it must not outlive a failed write (a full disk,
    // a file system gone read-only, a directory in the way of the rename).
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
}

/** Makes the rename durable (best effort: not every platform can fsync a directory). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Windows cannot open a directory; some file systems refuse fsync on one.
  }
}

/** Removes the file; true when there was one. */
export async function removeCredentials(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** The stored credentials with tokens replaced by a (refresh or login) answer. */
export function withTokens(creds: Omit<StoredCredentials, 'accessToken' | 'refreshToken' | 'expiresAt' | 'obtainedAt'>, tokens: TokenSet): StoredCredentials {
  return {
    ...creds,
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    expiresAt: tokens.expiresAt === null ? null : new Date(tokens.expiresAt).toISOString(),
    obtainedAt: new Date().toISOString(),
  };
}

function fresh(creds: StoredCredentials): boolean {
  return creds.expiresAt === null || Date.parse(creds.expiresAt) - EXPIRY_SKEW_MS > Date.now();
}

/**
 * The stored access token, refreshed first when it has expired (or is about to). Several CLI
 * processes may find it expired at once; with rotating refresh tokens only the first refresh
 * succeeds and a reused refresh token may even revoke the session, so refreshing happens under
 * a lock file, and whoever gets the lock second finds the token already renewed.
 */
export async function storedAccessToken(file: string): Promise<StoredCredentials | null> {
  const creds = await readCredentials(file);
  if (creds === null || fresh(creds)) return creds;
  if (creds.refreshToken === null) {
    throw new LoginError(`the token stored by \`kiln login\` expired at ${creds.expiresAt} and there is no refresh token: run \`kiln login\` again`);
  }
  return withCredentialsLock(file, async (lock) => {
    const text = await readCredentialsText(file);
    if (text === null) throw new LoginError('the stored credentials were removed (`kiln logout`) while refreshing: run `kiln login` again');
    const current = parseCredentials(file, text);
    if (fresh(current)) return current;
    if (current.refreshToken === null) throw new LoginError('the stored token expired and there is no refresh token: run `kiln login` again');
    // Last check before the refresh token is spent: were this lock broken (its holder judged
    // dead), another process could be spending the same token right now.
    await lock.check();
    const tokens = await refreshTokens(current.tokenEndpoint, current, current.refreshToken);
    const renewed = withTokens(current, tokens);
    // Store the new tokens only over the very file they were refreshed from: a `kiln logout`
    // or a new `kiln login` in the meantime wins, and is not undone by this refresh.
    const now = await readCredentialsText(file);
    if (now === text) {
      await writeCredentials(file, renewed);
      return renewed;
    }
    if (now === null) {
      if (renewed.revocationEndpoint && tokens.refreshToken) await revokeToken(renewed.revocationEndpoint, renewed.clientId, tokens.refreshToken, 'refresh_token');
      throw new LoginError('the stored credentials were removed (`kiln logout`) while refreshing: run `kiln login` again');
    }
    const replaced = parseCredentials(file, now);
    return fresh(replaced) ? replaced : renewed;
  });
}

/** What a holder of the credentials lock can ask of it. */
export interface HeldLock {
  /** Throws unless the lock file is still this process's (another process broke it as stale). */
  check(): Promise<void>;
}

/** What a lock file says about its holder. */
interface LockOwner {
  pid: number;
  host: string;
  /** Unique per lock taken: tells this lock from a later one at the same path. */
  nonce: string;
  createdAt: string;
}

/**
 * Runs fn holding the lock that serializes changes to the credentials file (refresh, logout,
 * login). `onTimeout: 'proceed'` runs fn anyway when the lock cannot be had in time (for
 * commands that must not fail because of a wedged lock: logging out, storing a new login).
 */
export async function withCredentialsLock<T>(file: string, fn: (lock: HeldLock) => Promise<T>, opts: { onTimeout?: 'throw' | 'proceed' } = {}): Promise<T> {
  const lockFile = `${file}.lock`;
  const owner = await acquireLock(lockFile, opts.onTimeout ?? 'throw');
  const lock: HeldLock = {
    check: async () => {
      if (owner === null) return;
      const now = await readLockOwner(lockFile);
      if (now?.nonce !== owner.nonce) throw new LoginError(`another kiln took over the lock ${lockFile} while this one held it; nothing was refreshed: try again`);
    },
  };
  try {
    return await fn(lock);
  } finally {
    if (owner !== null) await releaseLock(lockFile, owner);
  }
}

/** The lock's owner, or null once the lock is ours; null too when proceeding without it. */
async function acquireLock(lockFile: string, onTimeout: 'throw' | 'proceed'): Promise<LockOwner | null> {
  const owner: LockOwner = { pid: process.pid, host: hostname(), nonce: randomBytes(12).toString('hex'), createdAt: new Date().toISOString() };
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    let handle: FileHandle;
    try {
      handle = await open(lockFile, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // No directory yet (the first `kiln login`): create it as writeCredentials would.
        await mkdir(path.dirname(lockFile), { recursive: true, mode: 0o700 });
        continue;
      }
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await breakIfStale(lockFile)) continue;
      if (Date.now() > deadline) {
        if (onTimeout === 'proceed') return null;
        throw new LoginError(`another kiln has been refreshing the stored token for too long (${lockFile}); remove that file if no kiln is running`);
      }
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
      continue;
    }
    try {
      await handle.writeFile(JSON.stringify(owner));
    } finally {
      await handle.close();
    }
    return owner;
  }
}

async function releaseLock(lockFile: string, owner: LockOwner): Promise<void> {
  // Only our own lock: had ours been broken as stale, the file now is someone else's.
  if ((await readLockOwner(lockFile))?.nonce === owner.nonce) await rm(lockFile, { force: true });
}

async function readLockOwner(lockFile: string): Promise<LockOwner | null> {
  try {
    return parseLockOwner(await readFile(lockFile, 'utf8'));
  } catch {
    return null;
  }
}

function parseLockOwner(text: string): LockOwner | null {
  try {
    const v = JSON.parse(text) as Partial<LockOwner>;
    return typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.nonce === 'string' && typeof v.createdAt === 'string' ? (v as LockOwner) : null;
  } catch {
    return null; // a lock being written right now, or one its writer died writing
  }
}

/** A lock is stale when its process is gone (same host), or when it is older than STALE_LOCK_MS. */
function isStale(owner: LockOwner | null, mtimeMs: number): boolean {
  if (Date.now() - mtimeMs > STALE_LOCK_MS) return true;
  if (owner === null || owner.host !== hostname() || owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    // EPERM: the process exists, it is someone else's.
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Removes the lock file if it is stale; true when the caller should try to take the lock again.
 * Checking and then removing would race: between the two, another waiter may break the same
 * stale lock and take a fresh one, which would then be removed. So the lock judged stale is
 * renamed to a name of our own (atomic: only one waiter gets it), and removed only if it is
 * the very lock that was judged; a fresh lock moved by mistake is put back.
 */
async function breakIfStale(lockFile: string): Promise<boolean> {
  let judged: { text: string; ino: number; mtimeMs: number };
  try {
    const before = await stat(lockFile);
    judged = { text: await readFile(lockFile, 'utf8'), ino: before.ino, mtimeMs: before.mtimeMs };
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'; // released meanwhile: try again
  }
  if (!isStale(parseLockOwner(judged.text), judged.mtimeMs)) return false;
  const aside = `${lockFile}.stale.${process.pid}.${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockFile, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true; // someone else broke it
    throw err;
  }
  let same = false;
  try {
    const moved = await stat(aside);
    same = moved.ino === judged.ino && moved.mtimeMs === judged.mtimeMs && (await readFile(aside, 'utf8')) === judged.text;
  } catch {
    same = false;
  }
  if (!same) {
    // Another waiter broke the stale lock first and took the lock: give it back. link() does
    // not overwrite, so a lock taken in the meantime by a third process is left alone.
    await link(aside, lockFile).catch(() => undefined);
  }
  await rm(aside, { force: true });
  return true;
}
