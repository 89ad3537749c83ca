import { KilnClient } from '@kiln/sdk';
import { credentialsPath, storedAccessToken } from './credentials.js';
import { isSecureUrl } from './oidc.js';

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
 *
 * The stored login token is the user's identity-provider token, good at every service that
 * trusts that provider and audience: it goes over https (or plain http to this machine) only,
 * and only to the server named at `kiln login` (the local default when none was), unless
 * `--trust-server` says otherwise. A KILN_URL set by a project's environment thus cannot
 * collect it.
 */
export async function clientFrom(
  flags: { server?: string; token?: string; 'trust-server'?: boolean },
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
  const from = flags.server !== undefined ? '--server' : env.KILN_URL !== undefined ? 'KILN_URL' : storedServer !== null ? 'the login' : 'the default';
  let parsed: URL;
  try {
    parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error();
  } catch {
    throw new UsageError(`the server URL must be http:// or https://, got "${url}"`);
  }
  if (source === 'login') {
    if (!isSecureUrl(parsed)) {
      throw new UsageError(
        `refusing to send the token stored by \`kiln login\` over plain http to ${url} (from ${from}): anyone on the way could read and reuse it. Use an https:// server URL (plain http is allowed for loopback hosts only), or pass a token meant for that server with --token`,
      );
    }
    const bound = storedServer ?? DEFAULT_SERVER;
    if (parsed.origin !== originOf(bound) && flags['trust-server'] !== true) {
      const named = storedServer !== null ? `the server named at \`kiln login\`, ${bound}` : `the default server ${bound} (\`kiln login\` was run without --server)`;
      throw new UsageError(
        `refusing to send the token stored by \`kiln login\` to ${url} (from ${from}): it is for ${named}, and any server it is sent to can reuse it. Run \`kiln login --server ${parsed.origin}\` to sign in for that server, pass a token with --token, or add --trust-server if you trust ${parsed.origin} with your login`,
      );
    }
  }
  return { client: new KilnClient({ url, token }), source };
}

function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}
