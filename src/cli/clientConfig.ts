import { KilnClient } from '../sdk/client.js';
import { credentialsPath, storedAccessToken } from './credentials.js';

/** Where the CLI finds its server when neither --server nor KILN_URL says. */
export const DEFAULT_SERVER = 'http://127.0.0.1:4000';

/** A usage problem: printed with the usage hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Where the token of a command came from: it decides the hint printed when it is refused. */
export type TokenSource = 'flag' | 'env' | 'login';

/**
 * The CLI's client for the server named by `--server` (else KILN_URL, else the server named at
 * `kiln login`, else the local default), with the token of `--token` (else KILN_TOKEN, else the
 * one `kiln login` stored, refreshed when it has expired). These variables are the CLI's own,
 * read here and in login.ts and nowhere else, like the server's are in src/config.ts.
 */
export async function clientFrom(
  flags: { server?: string; token?: string },
  env: Record<string, string | undefined>,
): Promise<{ client: KilnClient; source: TokenSource }> {
  const explicit = (flags.token ?? env.KILN_TOKEN ?? '').trim().replace(/^Bearer\s+/i, '');
  let token = explicit;
  let source: TokenSource = flags.token !== undefined ? 'flag' : 'env';
  let storedServer: string | null = null;
  if (explicit === '') {
    const stored = await storedAccessToken(credentialsPath(env));
    if (stored === null) {
      throw new UsageError('no token: pass --token <jwt> or set KILN_TOKEN, or sign in with `kiln login` (in local mode `kiln token <user>` mints one)');
    }
    token = stored.accessToken;
    storedServer = stored.server;
    source = 'login';
  }
  const url = flags.server ?? env.KILN_URL ?? storedServer ?? DEFAULT_SERVER;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error();
  } catch {
    throw new UsageError(`the server URL must be http:// or https://, got "${url}"`);
  }
  return { client: new KilnClient({ url, token }), source };
}
