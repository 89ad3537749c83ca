import { SignJWT } from 'jose';
import type { AuthConfig } from './types.js';

/**
 * Mints an HS256 token for `sub` that the local-mode verifier accepts: `iss`, `aud`, `iat`,
 * `exp` (now + `ttlSeconds`) and `sub`. For `kiln token <user>`; the caller refuses it in
 * production.
 */
export async function mintLocalToken(
  cfg: Extract<AuthConfig, { mode: 'local' }>,
  sub: string,
  ttlSeconds = 3600 * 24,
): Promise<string> {
  if (typeof sub !== 'string' || sub.trim().length === 0) throw new Error('token subject must be a non-empty string');
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error(`token lifetime must be a positive whole number of seconds, got ${ttlSeconds}`);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuer(cfg.issuer)
    .setAudience(cfg.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(cfg.secret);
}

/**
 * The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or null
 * when the header is absent or of another form.
 */
export function bearerToken(header: string | undefined): string | null {
  if (typeof header !== 'string') return null;
  const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header.trim());
  return match ? match[1]! : null;
}
