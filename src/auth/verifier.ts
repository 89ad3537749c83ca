import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { ConfigError, UnauthenticatedError } from '../errors.js';
import type { AuthConfig, Principal, TokenVerifier } from './types.js';

/** Longer than any token an identity provider issues; refused before any parsing. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const MIN_SECRET_BYTES = 32;
/** Verified tokens remembered (see rememberVerified): at most this many... */
const REMEMBERED_MAX = 1024;
/** ...each for at most this long, and never past its `exp`. */
const REMEMBERED_MS = 60_000;

/**
 * Verifies bearer tokens. `jwks` mode checks signatures against the issuer's published keys
 * with an asymmetric-only algorithm allow-list; `local` mode checks HS256 with the shared
 * secret. Both check `iss` and `aud` and require `exp` and `sub`. A token that passed is
 * remembered for a minute (rememberVerified).
 */
export function createVerifier(cfg: AuthConfig): TokenVerifier {
  return rememberVerified(checkingVerifier(cfg));
}

/**
 * Remembers the principals of tokens `inner` accepted, by the token's SHA-256, so that a client
 * reusing its token (every client does) costs a hash per request instead of a signature check:
 * the rate limiter and the route each verify every request, and one HS256 check measured ~0.17 ms
 * of CPU plus a round trip through libuv's thread pool (WebCrypto), per verification.
 *
 * A remembered token is accepted until its `exp` as jose would (exp <= now is expired) and for at
 * most `ttlMs` after its check. Refusals are never remembered. Signing keys do not change while a
 * process runs in local mode; with a JWKS, jose itself keeps a fetched key set for up to 10
 * minutes, so a minute adds nothing to how long a withdrawn key is honoured.
 */
export function rememberVerified(inner: TokenVerifier, opts: { max?: number; ttlMs?: number; now?: () => number } = {}): TokenVerifier {
  const max = opts.max ?? REMEMBERED_MAX;
  const ttlMs = opts.ttlMs ?? REMEMBERED_MS;
  const now = opts.now ?? Date.now;
  // Insertion order is age: the first key is the oldest, dropped when full.
  const known = new Map<string, { principal: Principal; until: number }>();
  return {
    async verify(token: string): Promise<Principal> {
      // Whatever inner refuses before parsing, it refuses without costing a hash here.
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return inner.verify(token);
      const key = createHash('sha256').update(token).digest('base64url');
      const seen = known.get(key);
      if (seen !== undefined) {
        if (now() < seen.until) return seen.principal;
        known.delete(key);
      }
      const checkedAt = now();
      const principal = await inner.verify(token);
      known.delete(key);
      if (known.size >= max) known.delete(known.keys().next().value!);
      known.set(key, { principal, until: Math.min(checkedAt + ttlMs, principal.exp * 1000) });
      return principal;
    },
  };
}

function checkingVerifier(cfg: AuthConfig): TokenVerifier {
  if (cfg.mode === 'jwks') {
    const algorithms = asymmetricOnly(cfg.algorithms);
    if (algorithms.length === 0) {
      throw new ConfigError('KILN_JWKS_URL', `no usable JWS algorithm in [${cfg.algorithms.join(', ')}]: none and HS* are never accepted with a JWKS`);
    }
    const remote = createRemoteJWKSet(new URL(cfg.jwksUrl));
    // A refused connection rejects with a plain TypeError and a non-200 answer with a generic
    // JOSEError; tag both so they read as "keys unavailable" rather than as a bad token.
    const keys: JWTVerifyGetKey = (header, token) =>
      remote(header, token).catch((err: unknown) => {
        const code = (err as { code?: string } | undefined)?.code;
        throw code?.startsWith('ERR_') && code !== 'ERR_JOSE_GENERIC' ? err : Object.assign(new Error('JWKS fetch failed'), { code: 'ERR_JWKS_FETCH' });
      });
    return verifierWith((token, options) => jwtVerify(token, keys, options), { issuer: cfg.issuer, audience: cfg.audience, algorithms });
  }
  if (cfg.secret.byteLength < MIN_SECRET_BYTES) {
    throw new ConfigError('KILN_JWT_SECRET', `must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  const secret = cfg.secret;
  return verifierWith((token, options) => jwtVerify(token, secret, options), { issuer: cfg.issuer, audience: cfg.audience, algorithms: ['HS256'] });
}

/**
 * `none` is unsigned and HS* would let anyone holding the public key forge tokens (the key
 * bytes become the HMAC secret), so neither survives a misconfigured allow-list.
 */
function asymmetricOnly(algorithms: string[]): string[] {
  return algorithms.filter((alg) => alg.toLowerCase() !== 'none' && !/^HS/i.test(alg));
}

type Verify = (token: string, options: JWTVerifyOptions) => Promise<{ payload: JWTPayload }>;

function verifierWith(verifyJwt: Verify, checks: { issuer: string; audience: string; algorithms: string[] }): TokenVerifier {
  const options: JWTVerifyOptions = { ...checks, requiredClaims: ['exp', 'sub'] };
  return {
    async verify(token: string): Promise<Principal> {
      if (typeof token !== 'string' || token.length === 0) throw new UnauthenticatedError('missing token');
      if (token.length > MAX_TOKEN_LENGTH) throw new UnauthenticatedError('malformed token');
      let payload: JWTPayload;
      try {
        // jose enforces the allow-list too; checking first gives a clear reason for `none`.
        const { alg } = protectedHeader(token);
        if (typeof alg !== 'string' || !checks.algorithms.includes(alg)) {
          throw new UnauthenticatedError(`algorithm ${JSON.stringify(alg ?? null)} not allowed`);
        }
        ({ payload } = await verifyJwt(token, options));
      } catch (err) {
        throw toUnauthenticated(err);
      }
      if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
        throw new UnauthenticatedError('"sub" claim must be a non-empty string');
      }
      const name = [payload.name, payload.preferred_username].find((n): n is string => typeof n === 'string' && n.length > 0 && n.length <= 200);
      return { sub: payload.sub, exp: payload.exp!, ...(name !== undefined ? { name } : {}) };
    },
  };
}

/** decodeProtectedHeader throws a plain TypeError on malformed input. */
function protectedHeader(token: string): ReturnType<typeof decodeProtectedHeader> {
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw new UnauthenticatedError('malformed token');
  }
}

/** A short reason a client may see; never the stack or the token. */
function toUnauthenticated(err: unknown): UnauthenticatedError {
  if (err instanceof UnauthenticatedError) return err;
  const { code, message } = (err ?? {}) as { code?: string; message?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return new UnauthenticatedError('token expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      // jose's messages name the claim, e.g. `unexpected "aud" claim value`.
      return new UnauthenticatedError(message ?? 'invalid claims');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return new UnauthenticatedError('algorithm not allowed');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new UnauthenticatedError('signature verification failed');
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return new UnauthenticatedError('no matching signing key');
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_FETCH':
    case 'ERR_JWKS_INVALID':
      return new UnauthenticatedError('signing keys unavailable');
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
    case 'ERR_JWK_INVALID':
      return new UnauthenticatedError('malformed token');
    default:
      return new UnauthenticatedError('invalid token');
  }
}
