import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { LoginError, refreshTokens, type AudienceParam, type TokenSet } from './oidc.js';

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
/** A lock older than this was left by a process that died while refreshing. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 15_000;

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
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LoginError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
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
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', 0o600);
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
}

/** Removes the file; true when there was one. */
export async function removeCredentials(file: string): Promise<boolean> {
  try {
    await stat(file);
  } catch {
    return false;
  }
  await rm(file, { force: true });
  return true;
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
  return withLock(`${file}.lock`, async () => {
    const current = await readCredentials(file);
    if (current === null) throw new LoginError('the stored credentials were removed (`kiln logout`) while refreshing: run `kiln login` again');
    if (fresh(current)) return current;
    if (current.refreshToken === null) throw new LoginError('the stored token expired and there is no refresh token: run `kiln login` again');
    const tokens = await refreshTokens(current.tokenEndpoint, current, current.refreshToken);
    const renewed = withTokens(current, tokens);
    await writeCredentials(file, renewed);
    return renewed;
  });
}

async function withLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lockFile, 'wx', 0o600);
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockFile).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > STALE_LOCK_MS) {
        await rm(lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new LoginError(`another kiln has been refreshing the stored token for too long (${lockFile}); remove that file if no kiln is running`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockFile, { force: true });
  }
}
