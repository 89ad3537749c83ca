import { userInfo } from 'node:os';
import { ConfigError } from '../errors.js';
import { duration, type Env, isLoopbackHost, str, url } from './env.js';

/** How the web app signs browsers in and keeps them signed in (docs/design.md#web-sessions). */
export interface WebSettings {
  /**
   * Where browsers reach Kiln (KILN_PUBLIC_URL), e.g. `https://kiln.example.com`: the origin the
   * session cookie's requests and sockets must come from, and the base of the OIDC callback.
   * null: the origin of each request's own Host header (a Kiln reached directly).
   */
  publicUrl: string | null;
  /** A session unused this long ends (KILN_SESSION_IDLE, default 8h). */
  sessionIdleMs: number;
  /** A session ends this long after sign-in however much it is used (KILN_SESSION_MAX_AGE, default 7d). */
  sessionMaxAgeMs: number;
  /** How long local mode's one-time sign-in link works (KILN_SIGN_IN_LINK_TTL, default 15m). */
  signInLinkMs: number;
  /**
   * Kiln as an OIDC client of the identity provider that issues its tokens (JWKS mode):
   * KILN_OIDC_CLIENT_ID, and KILN_OIDC_CLIENT_SECRET for a confidential client. null: no
   * browser sign-in through the provider.
   */
  oidc: Readonly<{ clientId: string; clientSecret: string | null }> | null;
  /** Local mode: whom `kiln start`'s one-time sign-in link signs in (KILN_LOCAL_USER, default the OS user). */
  localUser: string;
}

function osUser(): string {
  try {
    return userInfo().username || 'local';
  } catch {
    // A uid without a passwd entry (some containers).
    return 'local';
  }
}

/** The web settings from the environment. */
export function loadWeb(env: Env): WebSettings {
  const publicUrl = url(env, 'KILN_PUBLIC_URL', ['http:', 'https:']);
  if (publicUrl !== undefined) {
    const parsed = new URL(publicUrl);
    if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) {
      throw new ConfigError('KILN_PUBLIC_URL', `must use https: (session cookies must not cross a network in clear; http: only on 127.0.0.1, ::1 or localhost), got "${publicUrl}"`);
    }
  }
  const clientId = str(env, 'KILN_OIDC_CLIENT_ID');
  const clientSecret = str(env, 'KILN_OIDC_CLIENT_SECRET') ?? null;
  if (clientId === undefined && clientSecret !== null) throw new ConfigError('KILN_OIDC_CLIENT_SECRET', 'is set without KILN_OIDC_CLIENT_ID');
  const sessionIdleMs = duration(env, 'KILN_SESSION_IDLE', 8 * 3_600_000, 1000);
  const sessionMaxAgeMs = duration(env, 'KILN_SESSION_MAX_AGE', 7 * 86_400_000, 1000);
  return Object.freeze({
    publicUrl: publicUrl === undefined ? null : new URL(publicUrl).origin,
    sessionIdleMs: Math.min(sessionIdleMs, sessionMaxAgeMs),
    sessionMaxAgeMs,
    signInLinkMs: duration(env, 'KILN_SIGN_IN_LINK_TTL', 15 * 60_000, 1000),
    oidc: clientId === undefined ? null : Object.freeze({ clientId, clientSecret }),
    localUser: str(env, 'KILN_LOCAL_USER') ?? osUser(),
  });
}
