import * as oidc from 'openid-client';
import { answerOf, causeOf, configurationOf, networkReason, RedirectRefused, TransientError, type ProviderAnswer } from './oidcClient.js';

/**
 * The CLI's side of OAuth 2.0 with the identity provider, on openid-client: OIDC discovery, the
 * Device Authorization Grant (RFC 8628), refresh and revocation (RFC 7009). openid-client builds
 * and checks the requests and answers; this module keeps Kiln's rules around them (https only
 * off loopback, no redirects with codes or tokens, how polling backs off). Kiln's server never
 * sees any of this: it only verifies the access tokens the provider issues.
 */

/** A sign-in that could not be completed: printed as it is, exit code 1. */
export class LoginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoginError';
  }
}

/**
 * How the audience (Kiln's API identifier) travels: Auth0 takes a proprietary `audience`
 * parameter; generic providers take an RFC 8707 `resource` indicator, which must also be sent
 * to the token endpoint, or they may issue a token for their own userinfo endpoint instead.
 */
export type AudienceParam = 'audience' | 'resource';

/** The endpoints of an issuer, from its discovery document. */
export interface IssuerEndpoints {
  issuer: string;
  deviceAuthorizationEndpoint: string;
  tokenEndpoint: string;
  revocationEndpoint: string | null;
}

/** What an OAuth client sends along with every request: who it is and for which API. */
export interface ClientParams {
  clientId: string;
  audience: string | null;
  audienceParam: AudienceParam;
}

/** A successful token response (RFC 6749 §5.1). */
export interface TokenSet {
  accessToken: string;
  refreshToken: string | null;
  idToken: string | null;
  /** Epoch ms; null when the provider said nothing and the token is not a JWT with `exp`. */
  expiresAt: number | null;
  scope: string | null;
}

/** The answer of the device authorization endpoint (RFC 8628 §3.2). */
export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string | null;
  expiresInSeconds: number;
  intervalSeconds: number;
}

/** Every request to the provider gives up after this long (the refresh lock relies on it). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** RFC 8628 §3.2: the interval when the provider names none; §3.5: slow_down adds 5 s. */
const DEFAULT_INTERVAL_S = 5;
const SLOW_DOWN_STEP_S = 5;
const MAX_BACKOFF_S = 60;
/** Redirects followed when reading the discovery document (each hop is checked). */
const MAX_DISCOVERY_REDIRECTS = 5;
/** When the provider does not say how long its codes last. */
const DEFAULT_DEVICE_CODE_TTL_S = 900;
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** Auth0 tenants; other hosts (including Auth0 custom domains) default to `resource`. */
export function defaultAudienceParam(issuer: string): AudienceParam {
  const host = new URL(issuer).hostname.toLowerCase();
  return /\.auth0\.com$|\.auth0\.app$/.test(host) ? 'audience' : 'resource';
}

/**
 * Tokens and codes cross these URLs, so plain http is refused unless the host is this machine
 * (a development provider on 127.0.0.1).
 */
export function requireSecureUrl(raw: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new LoginError(`${what} is not a URL: "${raw}"`);
  }
  if (isSecureUrl(url)) return url;
  throw new LoginError(`${what} must use https:// (plain http is allowed for loopback hosts only), got "${raw}"`);
}

/** https, or plain http to a loopback host: where a bearer token may travel. */
export function isSecureUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname));
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** Reads the issuer's `/.well-known/openid-configuration` and checks what the CLI needs. */
export async function discover(issuerUrl: string): Promise<IssuerEndpoints> {
  const issuer = requireSecureUrl(issuerUrl, 'the issuer URL');
  const base = issuer.href.replace(/\/+$/, '');
  const where = `${base}/.well-known/openid-configuration`;
  let status = 0;
  // Redirects are followed by hand, so that no hop leaves https (a downgraded hop could hand
  // the CLI a forged document naming an attacker's token endpoint).
  const hopByHop: oidc.CustomFetch = async (url, options) => {
    let at = url;
    for (let hops = 0; ; hops++) {
      let res: Response;
      try {
        res = await fetch(at, { ...options, redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) } as RequestInit);
      } catch (err) {
        throw new LoginError(`cannot reach the issuer at ${at}: ${networkReason(err)}`);
      }
      const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
      if (location === null) {
        status = res.status;
        return res;
      }
      await res.body?.cancel().catch(() => undefined);
      if (hops >= MAX_DISCOVERY_REDIRECTS) throw new LoginError(`the issuer's discovery document ${where} redirects too many times`);
      const next = new URL(location, at).href;
      requireSecureUrl(next, `the discovery document ${where} redirects to ${next}, which`);
      at = next;
    }
  };
  let metadata: oidc.ServerMetadata;
  try {
    // Only the provider's metadata is read here; the client id is given per request later.
    const config = await oidc.discovery(issuer, 'kiln-cli', undefined, oidc.None(), {
      [oidc.customFetch]: hopByHop,
      execute: issuer.protocol === 'http:' ? [oidc.allowInsecureRequests] : [],
      timeout: REQUEST_TIMEOUT_MS / 1000,
    });
    metadata = config.serverMetadata();
  } catch (err) {
    const own = causeOf(err, LoginError);
    if (own !== null) throw own;
    if (status !== 200 && status !== 0) throw new LoginError(`the issuer's discovery document ${where} answered HTTP ${status}`);
    // openid-client checks that the document names the issuer it was fetched for (OIDC
    // Discovery §4.3): else tokens would come from a provider other than the one Kiln trusts.
    throw new LoginError(`the discovery document at ${where} was refused: ${(err as Error).message}`);
  }
  const doc = metadata as unknown as Record<string, unknown>;
  const endpoint = (name: string, required: boolean): string | null => {
    const value = doc[name];
    if (value === undefined || value === null) {
      if (!required) return null;
      const hint = name === 'device_authorization_endpoint' ? ' (the provider does not offer the device authorization grant, or it is not enabled)' : '';
      throw new LoginError(`the issuer's discovery document has no ${name}${hint}`);
    }
    if (typeof value !== 'string') throw new LoginError(`the issuer's ${name} is not a string`);
    return requireSecureUrl(value, `the issuer's ${name}`).href;
  };
  return {
    issuer: metadata.issuer,
    deviceAuthorizationEndpoint: endpoint('device_authorization_endpoint', true)!,
    tokenEndpoint: endpoint('token_endpoint', true)!,
    revocationEndpoint: endpoint('revocation_endpoint', false),
  };
}

/** The audience as the provider expects it, for one request. */
function audienceFields(client: ClientParams, atTokenEndpoint: boolean): Record<string, string> {
  if (client.audience === null) return {};
  if (client.audienceParam === 'resource') return { resource: client.audience };
  // Auth0 binds the audience at the device authorization request only.
  return atTokenEndpoint ? {} : { audience: client.audience };
}

/** RFC 8628 §3.1-3.2: asks for a device code and the user code to show. */
export async function requestDeviceCode(endpoints: IssuerEndpoints, client: ClientParams, scope: string): Promise<DeviceAuthorization> {
  const { config, seen } = configurationOf(endpoints, client.clientId, REQUEST_TIMEOUT_MS);
  const answer = await transport(() => answerOf(seen, () => oidc.initiateDeviceAuthorization(config, { scope, ...audienceFields(client, false) })));
  if ('refused' in answer) throw new LoginError(`the device authorization request was refused: ${oauthReason(answer.refused.status, answer.refused.body)}`);
  const body = answer.ok as unknown as Record<string, unknown>;
  const str = (name: string) => (typeof body[name] === 'string' && body[name] !== '' ? (body[name] as string) : null);
  const deviceCode = str('device_code');
  const userCode = str('user_code');
  const verificationUri = str('verification_uri') ?? str('verification_url'); // Google's older spelling
  if (!deviceCode || !userCode || !verificationUri) {
    throw new LoginError('the device authorization response lacks device_code, user_code or verification_uri');
  }
  const positive = (v: unknown, def: number) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : typeof v === 'string' && /^\d+$/.test(v) && Number(v) > 0 ? Number(v) : def);
  return {
    deviceCode,
    userCode,
    verificationUri,
    verificationUriComplete: str('verification_uri_complete'),
    expiresInSeconds: positive(body.expires_in, DEFAULT_DEVICE_CODE_TTL_S),
    intervalSeconds: positive(body.interval, DEFAULT_INTERVAL_S),
  };
}

/** Waits between polls; injectable so that tests of the loop need not wait. */
export type Sleep = (ms: number) => Promise<void>;
const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * RFC 8628 §3.4-3.5: polls the token endpoint until the user approves or denies, or the code
 * expires. `authorization_pending` keeps polling at the interval, `slow_down` adds 5 s to it
 * for good, and a network failure doubles the wait (up to a minute) without giving up before
 * the code expires.
 */
export async function pollForToken(endpoints: IssuerEndpoints, client: ClientParams, device: DeviceAuthorization, sleep: Sleep = realSleep): Promise<TokenSet> {
  const deadline = Date.now() + device.expiresInSeconds * 1000;
  const { config, seen } = configurationOf(endpoints, client.clientId, REQUEST_TIMEOUT_MS);
  let interval = device.intervalSeconds;
  let wait = interval;
  const expired = () =>
    new LoginError(`the code ${device.userCode} expired before the sign-in was approved; run \`kiln login\` again`);
  for (;;) {
    await sleep(wait * 1000);
    let outcome: { ok: oidc.TokenEndpointResponse } | { refused: ProviderAnswer };
    try {
      outcome = await transport(() => answerOf(seen, () => oidc.genericGrantRequest(config, DEVICE_CODE_GRANT, { device_code: device.deviceCode, ...audienceFields(client, true) })));
    } catch (err) {
      if (Date.now() > deadline) throw expired();
      if (!(err instanceof TransientError)) throw err;
      wait = Math.min(wait * 2, MAX_BACKOFF_S);
      continue;
    }
    if ('ok' in outcome) return tokenSet(outcome.ok as unknown as Record<string, unknown>);
    const { status, body, retryAfterSeconds } = outcome.refused;
    if (status === 429) {
      // Rate limited (some providers say so with HTTP 429 instead of slow_down): the same
      // remedy as slow_down, and no sooner than the provider's Retry-After.
      if (Date.now() > deadline) throw expired();
      interval += SLOW_DOWN_STEP_S;
      wait = Math.max(interval, retryAfterSeconds ?? 0);
      continue;
    }
    if (status >= 500) {
      if (Date.now() > deadline) throw expired();
      wait = Math.max(Math.min(wait * 2, MAX_BACKOFF_S), retryAfterSeconds ?? 0);
      continue;
    }
    switch (body.error) {
      case 'authorization_pending':
        // The provider should answer expired_token by itself; this bounds a provider that
        // forgets the code instead and keeps saying "pending" or "not found".
        if (Date.now() > deadline) throw expired();
        wait = interval;
        continue;
      case 'slow_down':
        interval += SLOW_DOWN_STEP_S;
        wait = Math.max(interval, retryAfterSeconds ?? 0);
        continue;
      case 'expired_token':
        throw expired();
      case 'access_denied':
        throw new LoginError(`the sign-in was denied${describe(body)}; nothing was stored`);
      case 'invalid_grant':
        // Providers that drop expired codes answer "not found" instead of expired_token.
        if (Date.now() > deadline) throw expired();
        throw new LoginError(`the provider refused the device code: ${oauthReason(status, body)}`);
      default:
        throw new LoginError(`the token request was refused: ${oauthReason(status, body)}`);
    }
  }
}

/** Exchanges a refresh token for new tokens (RFC 6749 §6); the refresh token may rotate. */
export async function refreshTokens(tokenEndpoint: string, client: ClientParams, refreshToken: string): Promise<TokenSet> {
  const { config, seen } = configurationOf({ issuer: new URL(tokenEndpoint).origin, tokenEndpoint }, client.clientId, REQUEST_TIMEOUT_MS);
  let outcome: { ok: oidc.TokenEndpointResponse } | { refused: ProviderAnswer };
  try {
    outcome = await transport(() => answerOf(seen, () => oidc.refreshTokenGrant(config, refreshToken, audienceFields(client, true))));
  } catch (err) {
    throw new LoginError(`cannot refresh the stored token: ${(err as Error).message}`);
  }
  if ('refused' in outcome) {
    const answer = outcome.refused;
    if (answer.status === 429) {
      // The refresh token was not used up: trying again later is safe.
      const after = answer.retryAfterSeconds === null ? 'later' : `in ${answer.retryAfterSeconds} s`;
      throw new LoginError(`cannot refresh the stored token: the provider is rate limiting requests (HTTP 429); try again ${after}`);
    }
    const ended = answer.body.error === 'invalid_grant' ? '; the session has ended: run `kiln login` again' : '';
    throw new LoginError(`cannot refresh the stored token: ${oauthReason(answer.status, answer.body)}${ended}`);
  }
  const set = tokenSet(outcome.ok as unknown as Record<string, unknown>);
  // RFC 6749 §6: without a new refresh token in the answer, the old one stays valid.
  return { ...set, refreshToken: set.refreshToken ?? refreshToken };
}

/** RFC 7009: best effort; resolves with a reason when the provider did not confirm. */
export async function revokeToken(revocationEndpoint: string, clientId: string, token: string, hint: 'refresh_token' | 'access_token'): Promise<string | null> {
  const { config, seen } = configurationOf({ issuer: new URL(revocationEndpoint).origin, revocationEndpoint }, clientId, 10_000);
  try {
    const outcome = await transport(() => answerOf(seen, () => oidc.tokenRevocation(config, token, { token_type_hint: hint })));
    return 'ok' in outcome ? null : oauthReason(outcome.refused.status, outcome.refused.body);
  } catch (err) {
    return (err as Error).message;
  }
}

/** A refused redirect is a LoginError (the user must fix the configuration); anything else passes. */
async function transport<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    if (err instanceof RedirectRefused) throw new LoginError(err.message);
    throw err;
  }
}

function tokenSet(body: Record<string, unknown>): TokenSet {
  if (typeof body.access_token !== 'string' || body.access_token === '') throw new LoginError('the token response has no access_token');
  const type = typeof body.token_type === 'string' ? body.token_type : 'Bearer';
  if (type.toLowerCase() !== 'bearer') throw new LoginError(`the provider issued a "${type}" token; Kiln takes bearer tokens only`);
  const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : typeof body.expires_in === 'string' ? Number(body.expires_in) : NaN;
  return {
    accessToken: body.access_token,
    refreshToken: typeof body.refresh_token === 'string' && body.refresh_token !== '' ? body.refresh_token : null,
    idToken: typeof body.id_token === 'string' ? body.id_token : null,
    expiresAt: Number.isFinite(expiresIn) && expiresIn > 0 ? Date.now() + expiresIn * 1000 : jwtExpiry(body.access_token),
    scope: typeof body.scope === 'string' ? body.scope : null,
  };
}

/**
 * The unverified claims of a JWT, for display and expiry only: the server verifies the token;
 * the CLI merely holds it. Null for an opaque token.
 */
export function unverifiedClaims(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as unknown;
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function jwtExpiry(token: string): number | null {
  const exp = unverifiedClaims(token)?.exp;
  return typeof exp === 'number' ? exp * 1000 : null;
}

function oauthReason(status: number, body: Record<string, unknown>): string {
  if (typeof body.error !== 'string') return `HTTP ${status}`;
  return `${body.error}${describe(body)}`;
}

function describe(body: Record<string, unknown>): string {
  return typeof body.error_description === 'string' && body.error_description !== '' ? ` (${body.error_description})` : '';
}
