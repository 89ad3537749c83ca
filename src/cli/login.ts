import { MeDocument } from '@kiln/sdk';
import { UsageError } from './clientConfig.js';
import type { CommandContext, ExitCode } from './commands.js';
import { credentialsPath, readCredentials, removeCredentials, withCredentialsLock, withTokens, writeCredentials } from './credentials.js';
import { defaultAudienceParam, discover, LoginError, pollForToken, requestDeviceCode, requireSecureUrl, revokeToken, unverifiedClaims, type AudienceParam, type Sleep } from './oidc.js';

/** Without offline_access most providers issue no refresh token, and every hour means a new login. */
export const DEFAULT_SCOPE = 'openid offline_access';

/** The flags of `kiln login`; each falls back to its KILN_OIDC_* variable. */
export interface LoginFlags {
  issuer?: string;
  'client-id'?: string;
  audience?: string;
  'audience-param'?: string;
  scope?: string;
  server?: string;
}

/**
 * `kiln login`: signs in at the identity provider with the device authorization grant
 * (RFC 8628) and stores the tokens for the other commands. The user opens the printed URL in
 * any browser, on any machine, and confirms the code; nothing listens on this machine.
 */
export async function login(ctx: CommandContext, flags: LoginFlags, env: Record<string, string | undefined>, sleep?: Sleep): Promise<ExitCode> {
  const issuerUrl = flags.issuer ?? env.KILN_OIDC_ISSUER;
  const clientId = flags['client-id'] ?? env.KILN_OIDC_CLIENT_ID;
  if (!issuerUrl) throw new UsageError('name the identity provider: --issuer <url> or KILN_OIDC_ISSUER (e.g. https://your-tenant.auth0.com/)');
  if (!clientId) throw new UsageError('name the OAuth client registered for the CLI: --client-id <id> or KILN_OIDC_CLIENT_ID');
  const audience = flags.audience ?? env.KILN_OIDC_AUDIENCE ?? null;
  const scope = (flags.scope ?? env.KILN_OIDC_SCOPE ?? DEFAULT_SCOPE).trim();
  const server = flags.server ?? null;
  if (server !== null) requireSecureUrl(server, '--server'); // tokens will be sent there
  const audienceParam = audienceParamOf(flags['audience-param'] ?? env.KILN_OIDC_AUDIENCE_PARAM, issuerUrl);
  if (audience !== null && audienceParam === 'resource' && !isAbsoluteUri(audience)) {
    throw new UsageError(`RFC 8707 resource indicators are absolute URIs, and the audience "${audience}" is not one: use --audience-param audience if the provider takes Auth0's parameter`);
  }

  const endpoints = await discover(issuerUrl);
  const client = { clientId, audience, audienceParam };
  const device = await requestDeviceCode(endpoints, client, scope);
  const out = ctx.out;
  out.note(`To sign in, open this page in a browser (on any device):\n\n  ${out.paintErr('cyan', device.verificationUriComplete ?? device.verificationUri)}\n`);
  out.note(`and confirm that it shows the code: ${out.paintErr('yellow', device.userCode)}\n`);
  out.note(`Waiting for the sign-in (the code expires in ${Math.round(device.expiresInSeconds / 60) || 1} min)...`);
  out.spin('waiting for the sign-in');
  const tokens = await pollForToken(endpoints, client, device, sleep).finally(() => out.stopSpinner());

  const claims = unverifiedClaims(tokens.accessToken);
  const subject = pickString(unverifiedClaims(tokens.idToken ?? '')?.sub) ?? pickString(claims?.sub);
  const file = credentialsPath(env);
  // Under the lock, so that a refresh of the previous login running meanwhile cannot put its
  // tokens back over these (a wedged lock does not cost the user this sign-in, though).
  const creds = withTokens(
    {
      version: 1,
      issuer: endpoints.issuer,
      clientId,
      audience,
      audienceParam,
      scope,
      tokenEndpoint: endpoints.tokenEndpoint,
      revocationEndpoint: endpoints.revocationEndpoint,
      server,
      subject,
    },
    tokens,
  );
  await withCredentialsLock(file, () => writeCredentials(file, creds), { onTimeout: 'proceed' });
  const expires = tokens.expiresAt === null ? '' : `, the token expires at ${new Date(tokens.expiresAt).toISOString()}${tokens.refreshToken ? ' and is refreshed automatically' : ''}`;
  out.note(`${out.paintErr('green', 'Logged in')}${subject ? ` as ${subject}` : ''} at ${endpoints.issuer} (stored in ${file}${expires})`);
  // Kiln verifies JWTs against the issuer's keys; an opaque token (Auth0 without an audience,
  // a provider that ignored the resource) would be refused by every command.
  if (claims === null) {
    out.note(out.paintErr('yellow', 'warning: the provider issued an opaque (non-JWT) access token, which Kiln cannot verify: pass --audience with the API identifier Kiln is configured with (KILN_JWT_AUDIENCE)'));
  } else if (audience !== null && !audienceMatches(claims.aud, audience)) {
    out.note(out.paintErr('yellow', `warning: the access token's audience is ${JSON.stringify(claims.aud)}, not "${audience}": Kiln may refuse it`));
  }
  if (env.KILN_TOKEN) out.note('note: KILN_TOKEN is set, and it takes precedence over the stored login: unset it to use the login');
  if (tokens.refreshToken === null && scope.split(/\s+/).includes('offline_access')) {
    out.note('note: the provider issued no refresh token (is the refresh_token grant allowed for this client?); run `kiln login` again when the token expires');
  }
  return 0;
}

/**
 * `kiln logout`: revokes the refresh token at the provider (best effort) and forgets the tokens.
 * It takes the lock a refresh takes: a refresh running meanwhile finishes first (and its new
 * refresh token is the one revoked), and none can write the file back after it is removed.
 */
export async function logout(ctx: CommandContext, env: Record<string, string | undefined>): Promise<ExitCode> {
  const file = credentialsPath(env);
  if ((await readCredentials(file).catch(() => undefined)) === null) {
    ctx.out.note(`Not logged in (no ${file})`);
    return 0;
  }
  const removed = await withCredentialsLock(
    file,
    async () => {
      let creds = null;
      try {
        creds = await readCredentials(file);
      } catch {
        // A damaged file is removed all the same: that is what logging out is for.
      }
      if (creds?.refreshToken && creds.revocationEndpoint) {
        const failure = await revokeToken(creds.revocationEndpoint, creds.clientId, creds.refreshToken, 'refresh_token');
        if (failure !== null) ctx.out.note(ctx.out.paintErr('yellow', `warning: the provider did not confirm revoking the refresh token (${failure}); it stays valid until it expires`));
      }
      return removeCredentials(file);
    },
    // Logging out must work even with a wedged lock; a refresh that finishes later does not
    // write its tokens over a file that changed (or vanished) since it read it.
    { onTimeout: 'proceed' },
  );
  if (removed) ctx.out.note(`Logged out: removed ${file}`);
  else ctx.out.note(`Not logged in (no ${file})`);
  return 0;
}

/** `kiln whoami`: the user Kiln sees, i.e. the `sub` of the verified token. */
export async function whoami(ctx: CommandContext): Promise<ExitCode> {
  const { me } = await (await ctx.client()).request(MeDocument, {});
  ctx.out.line(me.id);
  return 0;
}

function audienceParamOf(raw: string | undefined, issuer: string): AudienceParam {
  if (raw === undefined || raw === '' || raw === 'auto') {
    try {
      return defaultAudienceParam(issuer);
    } catch {
      throw new LoginError(`the issuer URL is not a URL: "${issuer}"`);
    }
  }
  if (raw === 'audience' || raw === 'resource') return raw;
  throw new UsageError(`--audience-param takes audience (Auth0), resource (RFC 8707) or auto, got "${raw}"`);
}

function isAbsoluteUri(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(value) && URL.canParse(value);
}

function audienceMatches(aud: unknown, audience: string): boolean {
  return aud === audience || (Array.isArray(aud) && aud.includes(audience));
}

function pickString(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}
