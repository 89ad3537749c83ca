import type { AuthConfig } from '../auth/types.js';
import { ConfigError } from '../errors.js';
import { type Env, isLoopbackHost, str, url } from './env.js';

const LOCAL_ISSUER = 'kiln-local';

const LOCAL_AUDIENCE = 'kiln';

/**
 * The identity provider's key set: https, so that no one on the way can hand Kiln keys of their
 * own (security review L4); plain http only on loopback (a provider on the same host, tests).
 */
function jwksUrlOf(env: Env): string | undefined {
  const raw = url(env, 'KILN_JWKS_URL', ['http:', 'https:']);
  if (raw === undefined) return undefined;
  const parsed = new URL(raw);
  if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
    throw new ConfigError('KILN_JWKS_URL', `must use https: (http: only on 127.0.0.1, ::1 or localhost), got "${raw}"`);
  }
  return raw;
}

/** Production (JWKS) or local (KILN_JWT_SECRET) auth from the environment; null when neither is set. */
export function loadAuth(env: Env): AuthConfig | null {
  const secret = str(env, 'KILN_JWT_SECRET');
  const jwksUrl = jwksUrlOf(env);
  if (secret !== undefined && jwksUrl !== undefined) {
    throw new ConfigError('KILN_JWT_SECRET', 'set either KILN_JWT_SECRET (local mode) or KILN_JWKS_URL (identity provider), not both');
  }
  if (jwksUrl !== undefined) {
    const issuer = str(env, 'KILN_JWT_ISSUER');
    const audience = str(env, 'KILN_JWT_AUDIENCE');
    if (!issuer) throw new ConfigError('KILN_JWT_ISSUER', 'is required with KILN_JWKS_URL');
    if (!audience) throw new ConfigError('KILN_JWT_AUDIENCE', 'is required with KILN_JWKS_URL');
    const algorithms = (str(env, 'KILN_JWT_ALGORITHMS') ?? 'RS256').split(',').map((a) => a.trim()).filter(Boolean);
    const bad = algorithms.find((a) => a === 'none' || a.startsWith('HS'));
    if (bad) throw new ConfigError('KILN_JWT_ALGORITHMS', `"${bad}" is not allowed with a JWKS (asymmetric algorithms only)`);
    return { mode: 'jwks', jwksUrl, issuer, audience, algorithms };
  }
  if (secret !== undefined) {
    const bytes = new TextEncoder().encode(secret);
    if (bytes.length < 32) throw new ConfigError('KILN_JWT_SECRET', `must be at least 32 bytes, got ${bytes.length}`);
    return localAuth(bytes, env);
  }
  return null;
}

/** What local-mode tokens carry as `iss` and `aud` (README): KILN_JWT_ISSUER/AUDIENCE, else the defaults. */
export function localTokenClaims(env: Env): { issuer: string; audience: string } {
  return { issuer: str(env, 'KILN_JWT_ISSUER') ?? LOCAL_ISSUER, audience: str(env, 'KILN_JWT_AUDIENCE') ?? LOCAL_AUDIENCE };
}

/** Local-mode auth for a secret (from the environment or the data directory). */
export function localAuth(secret: Uint8Array, env: Env = {}): AuthConfig {
  return { mode: 'local', secret, ...localTokenClaims(env) };
}
