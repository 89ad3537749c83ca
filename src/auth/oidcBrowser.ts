import * as client from 'openid-client';
import { UnauthenticatedError } from '../errors.js';
import type { AuthConfig, Principal, TokenVerifier } from './types.js';

/** Kiln as an OIDC client of its identity provider, for browsers (docs/design.md#web-sessions). */
export interface OidcClientSettings {
  clientId: string;
  /** null: a public client (PKCE only). */
  clientSecret: string | null;
}

/** Where the flow sends the browser, and what the callback must check. */
export interface StartedFlow {
  url: URL;
  state: string;
  codeVerifier: string;
  nonce: string;
}

/**
 * The authorization-code flow with PKCE (openid-client), run by Kiln for its web app: Kiln holds
 * the code verifier and the tokens, the browser only ever holds Kiln's session cookie. The
 * identity is the `sub` of the access token as Kiln's own verifier checks it, so a user's
 * browser session owns the same jobs as their CLI's bearer token.
 */
export class OidcBrowserClient {
  private config: Promise<client.Configuration> | null = null;

  constructor(
    private readonly auth: Extract<AuthConfig, { mode: 'jwks' }>,
    private readonly settings: OidcClientSettings,
    private readonly verifier: TokenVerifier,
  ) {}

  /** The provider's metadata, discovered once; a failed discovery is tried again next time. */
  private configuration(): Promise<client.Configuration> {
    if (this.config === null) {
      const issuer = new URL(this.auth.issuer);
      const { clientId, clientSecret } = this.settings;
      const authMethod = clientSecret === null ? client.None() : client.ClientSecretPost(clientSecret);
      // Plain http only to a provider on this machine (config/auth.ts allows the same for the JWKS).
      const loopback = issuer.protocol === 'http:' && /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(issuer.hostname);
      this.config = client.discovery(issuer, clientId, undefined, authMethod, { execute: loopback ? [client.allowInsecureRequests] : [], timeout: 10 });
      this.config.catch(() => {
        this.config = null;
      });
    }
    return this.config;
  }

  /** Starts a flow returning to `redirectUri`: the provider's URL to send the browser to. */
  async start(redirectUri: string): Promise<StartedFlow> {
    const config = await this.configuration();
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid profile',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...this.audienceParam(),
    });
    return { url, state, codeVerifier, nonce };
  }

  /**
   * Finishes a flow from the callback's URL: checks state, nonce and PKCE (openid-client),
   * exchanges the code, and verifies the access token as any bearer token is verified.
   */
  async finish(callbackUrl: URL, checks: { state: string; codeVerifier: string; nonce: string }, redirectUri: string): Promise<Principal> {
    const config = await this.configuration();
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(
        config,
        callbackUrl,
        { pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state, expectedNonce: checks.nonce, idTokenExpected: true },
        { redirect_uri: redirectUri, ...(this.audienceParam().resource ? { resource: this.auth.audience } : {}) },
      );
    } catch (err) {
      throw new UnauthenticatedError(`the identity provider's answer was refused: ${describe(err)}`);
    }
    const principal = await this.verifier.verify(tokens.access_token);
    const claims = tokens.claims();
    if (claims?.sub !== undefined && claims.sub !== principal.sub) throw new UnauthenticatedError('the ID token and the access token name different users');
    const name = [claims?.name, claims?.preferred_username, claims?.email, principal.name].find((n): n is string => typeof n === 'string' && n.length > 0 && n.length <= 200);
    return { ...principal, name: name ?? principal.sub };
  }

  /** The audience as the provider wants it: Auth0's `audience`, else an RFC 8707 `resource`. */
  private audienceParam(): Record<string, string> {
    const host = new URL(this.auth.issuer).hostname.toLowerCase();
    return /\.auth0\.(com|app)$/.test(host) ? { audience: this.auth.audience } : { resource: this.auth.audience };
  }
}

function describe(err: unknown): string {
  const e = err as { error?: string; error_description?: string; message?: string };
  if (typeof e.error === 'string') return e.error_description ? `${e.error} (${e.error_description})` : e.error;
  return e.message ?? String(err);
}
