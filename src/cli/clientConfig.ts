import { KilnClient } from '../sdk/client.js';

/** Where the CLI finds its server when neither --server nor KILN_URL says. */
export const DEFAULT_SERVER = 'http://127.0.0.1:4000';

/** A usage problem: printed with the usage hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * The CLI's client for the server named by `--server` (else KILN_URL, else the local default),
 * with the token of `--token` (else KILN_TOKEN). These variables are the CLI's own, read here
 * and nowhere else, like the server's are in src/config.ts.
 */
export function clientFrom(flags: { server?: string; token?: string }, env: Record<string, string | undefined>): KilnClient {
  const url = flags.server ?? env.KILN_URL ?? DEFAULT_SERVER;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error();
  } catch {
    throw new UsageError(`the server URL must be http:// or https://, got "${url}"`);
  }
  const token = (flags.token ?? env.KILN_TOKEN ?? '').trim().replace(/^Bearer\s+/i, '');
  if (token === '') throw new UsageError('no token: pass --token <jwt> or set KILN_TOKEN (in local mode `kiln token <user>` mints one)');
  return new KilnClient({ url, token });
}
