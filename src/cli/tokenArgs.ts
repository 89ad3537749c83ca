import { parseArgs } from 'node:util';
import { parseDuration } from '../schedule/duration.js';

/** What `kiln token` is asked to mint. */
export interface TokenRequest {
  user: string;
  ttlSeconds: number;
}

export const TOKEN_USAGE = 'usage: kiln token <user> [--ttl 24h]';
const DEFAULT_TTL_SECONDS = 24 * 3600;

/**
 * Reads `kiln token`'s arguments, options anywhere: `--ttl 1h alice` mints for alice (never for a
 * user named "1h", security review L4). Exactly one user; an unknown option or a second name is
 * an error naming it.
 */
export function parseTokenArgs(args: string[]): TokenRequest {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${TOKEN_USAGE}`);
  }
  const [user, ...extra] = parsed.positionals;
  if (user === undefined || user.trim() === '') throw new Error(TOKEN_USAGE);
  if (extra.length > 0) throw new Error(`one user at a time, got ${[user, ...extra].map((u) => `"${u}"`).join(', ')}\n${TOKEN_USAGE}`);
  if (parsed.values.ttl === undefined) return { user, ttlSeconds: DEFAULT_TTL_SECONDS };
  const ttl = parseDuration(parsed.values.ttl);
  if (!ttl.ok) throw new Error(`--ttl: ${ttl.error}`);
  return { user, ttlSeconds: Math.max(1, Math.round(ttl.value / 1000)) };
}

function parse(args: string[]) {
  return parseArgs({ args, options: { ttl: { type: 'string' } }, allowPositionals: true, strict: true });
}
