import * as client from 'openid-client';

/**
 * The CLI's plumbing under openid-client (src/cli/oidc.ts holds the protocol's rules): every
 * request goes through one guarded fetch, which never follows a redirect with a code or token in
 * it, gives up after a timeout, and records the provider's last answer (status, Retry-After, the
 * OAuth error) so that the device flow's polling can act on it.
 */

/** A failure worth retrying: the network, not the provider's answer. */
export class TransientError extends Error {}

/** A redirect answered to a request carrying a code or a token: never followed. */
export class RedirectRefused extends Error {}

/** The provider's answer to one request, whatever openid-client made of it. */
export interface ProviderAnswer {
  status: number;
  /** The Retry-After header in seconds (RFC 9110 §10.2.3: seconds or an HTTP date), else null. */
  retryAfterSeconds: number | null;
  /** The OAuth error body (`error`, `error_description`), when there was one. */
  body: Record<string, unknown>;
}

/** The longest Retry-After honoured as given; a provider asking for more is polled this often. */
const MAX_RETRY_AFTER_S = 300;

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

function networkReason(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'timed out';
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

export { networkReason };

function retryAfter(raw: string | null): number | null {
  if (raw === null || raw.trim() === '') return null;
  const value = raw.trim();
  const seconds = /^\d+$/.test(value) ? Number(value) : Math.ceil((Date.parse(value) - Date.now()) / 1000);
  if (!Number.isFinite(seconds)) return null;
  return Math.min(Math.max(seconds, 0), MAX_RETRY_AFTER_S);
}

/** A fetch for openid-client that refuses redirects and records the last answer in `seen`. */
function guardedFetch(timeoutMs: number, seen: { last: ProviderAnswer | null }): client.CustomFetch {
  return async (url, options) => {
    let res: Response;
    try {
      res = await fetch(url, { ...options, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) } as RequestInit);
    } catch (err) {
      throw new TransientError(`cannot reach ${url}: ${networkReason(err)}`);
    }
    if (isRedirect(res.status)) {
      await res.body?.cancel().catch(() => undefined);
      const location = res.headers.get('location');
      throw new RedirectRefused(
        `${url} answered HTTP ${res.status}${location ? ` redirecting to ${location}` : ''}; kiln does not follow redirects with codes or tokens: configure the provider's endpoint URL itself (is the issuer URL right?)`,
      );
    }
    seen.last = { status: res.status, retryAfterSeconds: retryAfter(res.headers.get('retry-after')), body: {} };
    return res;
  };
}

/** The endpoints a configuration is made of. */
export interface Endpoints {
  issuer: string;
  tokenEndpoint?: string;
  deviceAuthorizationEndpoint?: string;
  revocationEndpoint?: string | null;
}

/** An openid-client configuration of a public client over `endpoints`, with its guarded fetch. */
export function configurationOf(endpoints: Endpoints, clientId: string, timeoutMs: number): { config: client.Configuration; seen: { last: ProviderAnswer | null } } {
  const seen: { last: ProviderAnswer | null } = { last: null };
  const config = new client.Configuration(
    {
      issuer: endpoints.issuer,
      ...(endpoints.tokenEndpoint ? { token_endpoint: endpoints.tokenEndpoint } : {}),
      ...(endpoints.deviceAuthorizationEndpoint ? { device_authorization_endpoint: endpoints.deviceAuthorizationEndpoint } : {}),
      ...(endpoints.revocationEndpoint ? { revocation_endpoint: endpoints.revocationEndpoint } : {}),
    },
    clientId,
    undefined,
    client.None(),
  );
  config[client.customFetch] = guardedFetch(timeoutMs, seen);
  // Plain http reaches only loopback providers: oidc.ts refuses any other before this.
  client.allowInsecureRequests(config);
  return { config, seen };
}

/**
 * Runs one openid-client request: its result, or the provider's answer when it was refused
 * (status, Retry-After and the OAuth error, for the caller's rules). Transport failures
 * (TransientError, RedirectRefused) are thrown as they are.
 */
export async function answerOf<T>(seen: { last: ProviderAnswer | null }, request: () => Promise<T>): Promise<{ ok: T } | { refused: ProviderAnswer }> {
  seen.last = null;
  try {
    return { ok: await request() };
  } catch (err) {
    // openid-client wraps what the fetch threw in a ClientError ("something went wrong").
    const own = causeOf<TransientError | RedirectRefused>(err, TransientError, RedirectRefused);
    if (own !== null) throw own;
    // Set by the guarded fetch during the request (TypeScript cannot see that).
    const last = seen.last as ProviderAnswer | null;
    if (err instanceof client.ResponseBodyError) {
      return { refused: { status: err.status, retryAfterSeconds: last?.retryAfterSeconds ?? null, body: { error: err.error, error_description: err.error_description } } };
    }
    if (last !== null && last.status !== 200) return { refused: last };
    throw err;
  }
}

/** The first error of one of `classes` in `err`'s chain of causes (openid-client wraps what a fetch threw), or null. */
export function causeOf<T extends Error>(err: unknown, ...classes: Array<abstract new (...args: never[]) => T>): T | null {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (classes.some((c) => e instanceof c)) return e as T;
  }
  return null;
}
