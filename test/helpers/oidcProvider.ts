import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real OpenID Provider (panva's oidc-provider) on 127.0.0.1, set up the way a Kiln operator
 * would set up theirs for the CLI: device flow on, a public client allowed the device_code and
 * refresh_token grants, and Kiln's API registered as a resource server (RFC 8707) whose access
 * tokens are RS256 JWTs, so that Kiln can verify them against the provider's JWKS.
 */
export interface TestOidcProvider {
  /** The issuer URL (no trailing slash, as oidc-provider names itself). */
  issuer: string;
  jwksUrl: string;
  clientId: string;
  /** The resource indicator / `aud` of access tokens for Kiln. */
  audience: string;
  /** Kiln's web app as a confidential authorization-code client (PKCE), for browser sign-in. */
  webClient: { clientId: string; clientSecret: string };
  /** Lifetime of new device codes, seconds; change it between tests. */
  deviceCodeTtl: number;
  stop(): Promise<void>;
}

/** The slice of oidc-provider's API used here (the package ships no types). */
interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
type ProviderClass = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
interface ProviderModule {
  default: ProviderClass;
  errors: { InvalidTarget: new (description?: string) => Error };
}

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const WEB_CLIENT = { clientId: 'kiln-web', clientSecret: 'kiln-web-test-secret-0123456789abcdef' };

export async function startOidcProvider(opts: { audience?: string; clientId?: string } = {}): Promise<TestOidcProvider> {
  // A computed specifier: the package has no type declarations for a static import to find.
  const { default: Provider, errors } = (await import('oidc-provider' as string)) as ProviderModule;
  const audience = opts.audience ?? 'https://kiln.test/api';
  const clientId = opts.clientId ?? 'kiln-cli';
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const state = { deviceCodeTtl: 600 };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_name: 'Kiln CLI',
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_CODE_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
      {
        // Kiln's web app. A "native" client because Kiln's test port is known only once it
        // listens: oidc-provider then matches loopback redirect URIs with any port (RFC 8252 §7.3).
        client_id: WEB_CLIENT.clientId,
        client_secret: WEB_CLIENT.clientSecret,
        client_name: 'Kiln web',
        application_type: 'native',
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/api/v1/callback'],
      },
    ],
    pkce: { required: () => true },
    // The display name a browser session shows, under the `profile` scope.
    claims: { openid: ['sub'], profile: ['name'] },
    jwks: { keys: [{ ...signingKey, alg: 'RS256', use: 'sig', kid: 'test-rs256' }] },
    cookies: { keys: ['kiln-test-cookie-key-0123456789abcdef'] },
    // Any account id signs in (the dev interactions take any login and password).
    findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => ({ sub: id, name: `User ${id}` }) }),
    scopes: ['openid', 'offline_access', 'jobs', 'profile'],
    ttl: {
      // biome-ignore lint/correctness/noComponentHookFactories: an oidc-provider TTL function, not a React component
      DeviceCode: () => state.deviceCodeTtl,
      AccessToken: 3600,
      IdToken: 3600,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      RefreshToken: 24 * 3600,
    },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource !== audience) throw new errors.InvalidTarget(`unknown resource ${resource}`);
          return { scope: 'jobs', audience, accessTokenTTL: 3600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
  });
  server.on('request', provider.callback());

  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    clientId,
    audience,
    webClient: WEB_CLIENT,
    get deviceCodeTtl() {
      return state.deviceCodeTtl;
    },
    set deviceCodeTtl(seconds: number) {
      state.deviceCodeTtl = seconds;
    },
    stop() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** A form on a page: where it posts and its hidden fields. */
interface Form {
  action: string;
  fields: Record<string, string>;
}

function formsOf(html: string, base: string): Form[] {
  const unescapeHtml = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;|&#x27;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const forms: Form[] = [];
  for (const [, attrs, body] of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const action = /action="([^"]*)"/.exec(attrs!)?.[1] ?? '';
    const fields: Record<string, string> = {};
    for (const [input] of body!.matchAll(/<input\b[^>]*>/g)) {
      if (!/type="hidden"/.test(input)) continue;
      const name = /name="([^"]*)"/.exec(input)?.[1];
      if (name) fields[name] = unescapeHtml(/value="([^"]*)"/.exec(input)?.[1] ?? '');
    }
    forms.push({ action: new URL(unescapeHtml(action), base).href, fields });
  }
  return forms;
}

/**
 * A browser reduced to what the provider's pages need: a cookie jar (cookies matched by path),
 * redirects followed by hand so that every Set-Cookie is kept, and form posts.
 */
class Browser {
  private jar = new Map<string, { value: string; path: string }>();

  async go(url: string, form?: Record<string, string>): Promise<{ url: string; status: number; html: string }> {
    let method = form ? 'POST' : 'GET';
    let body: string | undefined = form ? new URLSearchParams(form).toString() : undefined;
    for (let hops = 0; hops < 20; hops++) {
      const target = new URL(url);
      const cookie = [...this.jar].filter(([, c]) => target.pathname.startsWith(c.path)).map(([key, c]) => `${key.split('\n')[0]}=${c.value}`).join('; ');
      const res = await fetch(url, {
        method,
        redirect: 'manual',
        headers: { ...(cookie ? { cookie } : {}), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        body,
      });
      for (const line of res.headers.getSetCookie()) this.keep(line);
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        url = new URL(res.headers.get('location')!, url).href;
        method = 'GET';
        body = undefined;
        await res.arrayBuffer();
        continue;
      }
      return { url, status: res.status, html: await res.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  private keep(line: string): void {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    const attr = (n: string) => attrs.find((a) => a.toLowerCase().startsWith(`${n}=`))?.slice(n.length + 1);
    const path = attr('path') ?? '/';
    const key = `${name}\n${path}`;
    const expires = attr('expires');
    const gone = value === '' || attr('max-age') === '0' || (expires !== undefined && Date.parse(expires) < Date.now());
    if (gone) this.jar.delete(key);
    else this.jar.set(key, { value, path });
  }
}

/**
 * Plays the user at the provider's device verification page: opens the URL the CLI printed,
 * then confirms the code (or aborts), signs in as `accountId` and consents. Resolves with the
 * final page, which says whether the device was signed in.
 */
export async function actAsUser(verificationUrl: string, action: { approveAs: string } | { deny: true }): Promise<string> {
  const browser = new Browser();
  // The page auto-posts the user code with the session's xsrf token (JavaScript, in a browser).
  let page = await browser.go(verificationUrl);
  const codeForm = formsOf(page.html, page.url).find((f) => 'xsrf' in f.fields && 'user_code' in f.fields);
  if (!codeForm) throw new Error(`no user-code form at ${page.url}:\n${page.html}`);
  page = await browser.go(codeForm.action, codeForm.fields);
  const confirm = formsOf(page.html, page.url).find((f) => f.fields.confirm === 'yes');
  if (!confirm) throw new Error(`no confirmation form at ${page.url} (${page.status}):\n${page.html}`);
  if ('deny' in action) {
    const { confirm: _, ...fields } = confirm.fields;
    return (await browser.go(confirm.action, { ...fields, abort: 'yes' })).html;
  }
  page = await browser.go(confirm.action, confirm.fields);
  // Then the provider's interactions: a login prompt, then consent, in whatever order it asks.
  for (let step = 0; step < 5 && /\/interaction\//.test(page.url); step++) {
    const form = formsOf(page.html, page.url).find((f) => f.fields.prompt === 'login' || f.fields.prompt === 'consent');
    if (!form) throw new Error(`no interaction form at ${page.url}:\n${page.html}`);
    const extra: Record<string, string> = form.fields.prompt === 'login' ? { login: action.approveAs, password: 'any' } : {};
    page = await browser.go(form.action, { ...form.fields, ...extra });
  }
  return page.html;
}
