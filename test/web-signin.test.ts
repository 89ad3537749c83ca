import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshot } from './helpers/browser.js';
import { createTestDatabase } from './helpers/db.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { startOidcProvider, type TestOidcProvider } from './helpers/oidcProvider.js';
import { startKilnProcess, type KilnProcess } from './helpers/processes.js';

let browser: Browser;

/**
 * A fresh context whose requests may reach only the given origins; anything else is aborted,
 * and recorded when a page of the first origin (Kiln's) asked for it. (The provider's own
 * development login page asks for a web font; that is oidc-provider's, not Kiln's.)
 */
async function offlineContext(...origins: string[]): Promise<{ context: BrowserContext; offsite: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const offsite: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (origins.some((o) => url.startsWith(o)) || url.startsWith('data:')) return route.continue();
    const from = route.request().frame()?.url() ?? '';
    if (route.request().isNavigationRequest() || from.startsWith(origins[0]!)) offsite.push(url);
    return route.abort();
  });
  return { context, offsite };
}

/** What `GET /api/v1/session` answers inside the page (its cookies, its origin). */
async function sessionInPage(page: Page): Promise<{ status: number; body: unknown }> {
  return page.evaluate(async () => {
    const res = await fetch('/api/v1/session');
    return { status: res.status, body: res.status === 200 ? await res.json() : null };
  });
}

/** A GraphQL mutation from the page, with or without the CSRF header the app sends. */
async function mutateInPage(page: Page, withCsrf: boolean): Promise<{ status: number; body: any }> {
  return page.evaluate(async (csrf) => {
    const token = (globalThis as unknown as { document: { cookie: string } }).document.cookie.split('; ').find((c: string) => c.startsWith('kiln_csrf='))?.slice('kiln_csrf='.length);
    const spec = 'jobs:\n  - name: FromBrowser\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n';
    const res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(csrf && token ? { 'x-csrf-token': token } : {}) },
      body: JSON.stringify({ query: 'mutation($s: String!) { submitJob(spec: $s) { jobs { id name } } }', variables: { s: spec } }),
    });
    return { status: res.status, body: await res.json() };
  }, withCsrf);
}

beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

describe('sign-in through the identity provider (JWKS mode)', () => {
  let idp: TestOidcProvider;
  let k: TestKiln;

  beforeAll(async () => {
    idp = await startOidcProvider();
    k = await startTestKiln({
      worker: false,
      env: {
        KILN_JWT_SECRET: '',
        KILN_JWKS_URL: idp.jwksUrl,
        KILN_JWT_ISSUER: idp.issuer,
        KILN_JWT_AUDIENCE: idp.audience,
        KILN_OIDC_CLIENT_ID: idp.webClient.clientId,
        KILN_OIDC_CLIENT_SECRET: idp.webClient.clientSecret,
      },
    });
  });
  afterAll(async () => {
    await k?.stop();
    await idp?.stop();
  });

  it('goes /api/v1/login -> the provider login page -> back on the board, signed in; refuses a mutation without the CSRF token; logout ends it', async () => {
    const { context, offsite } = await offlineContext(k.url, idp.issuer);
    const page = await context.newPage();
    await page.goto(`${k.url}/`);
    await page.getByText('You are signed out.').waitFor();
    await screenshot(page, 'web-signin-1-signed-out');

    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.href.startsWith(idp.issuer));
    await page.locator('input[name="login"]').waitFor();
    await screenshot(page, 'web-signin-2-provider-login');
    await page.locator('input[name="login"]').fill('carol');
    await page.locator('input[name="password"]').fill('any password');
    await page.locator('button[type="submit"]').click();
    // The provider asks for consent once: Continue.
    await page.waitForURL((url) => url.href.startsWith(k.url) || url.pathname.includes('/interaction/'));
    if (page.url().startsWith(idp.issuer)) {
      await screenshot(page, 'web-signin-3-provider-consent');
      await page.locator('button[type="submit"]').click();
    }
    await page.waitForURL(`${k.url}/`);
    await page.getByTestId('user-name').waitFor();
    expect(await page.getByTestId('user-name').textContent()).toBe('User carol');
    await screenshot(page, 'web-signin-4-board-signed-in');

    expect(await sessionInPage(page)).toEqual({ status: 200, body: { user: { id: 'carol', name: 'User carol' } } });
    const cookies = await context.cookies(k.url);
    expect(cookies.find((c) => c.name === 'kiln_session')).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    expect(cookies.find((c) => c.name === 'kiln_csrf')).toMatchObject({ httpOnly: false, sameSite: 'Strict' });
    // The page's script cannot read the session id.
    expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).not.toContain('kiln_session');

    const refused = await mutateInPage(page, false);
    expect(refused.status).toBe(403);
    expect(refused.body.errors[0].extensions.code).toBe('FORBIDDEN');
    const done = await mutateInPage(page, true);
    expect(done.status).toBe(200);
    expect(done.body.data.submitJob.jobs[0].name).toBe('FromBrowser');
    // The owner is the access token's subject, as Kiln's verifier reads it for any bearer token.
    const owners = await page.evaluate(async (): Promise<{ data: { me: { id: string } } }> => {
      const token = (globalThis as unknown as { document: { cookie: string } }).document.cookie.split('; ').find((c: string) => c.startsWith('kiln_csrf='))!.slice('kiln_csrf='.length);
      const res = await fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': token }, body: JSON.stringify({ query: '{ me { id } }' }) });
      return (await res.json()) as { data: { me: { id: string } } };
    });
    expect(owners.data.me.id).toBe('carol');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out.').waitFor();
    await screenshot(page, 'web-signin-5-signed-out-again');
    expect((await sessionInPage(page)).status).toBe(401);
    expect((await mutateInPage(page, true)).status).toBe(401);
    expect(offsite).toEqual([]);
    await context.close();
  });

  it('returns to the page the user came from, and never to another site', async () => {
    const { context } = await offlineContext(k.url, idp.issuer);
    const page = await context.newPage();
    const signIn = async (returnTo: string) => {
      await page.goto(`${k.url}/api/v1/login?return_to=${encodeURIComponent(returnTo)}`);
      // The provider remembers carol's sign-in in this context after the first time.
      for (let step = 0; step < 4 && page.url().startsWith(idp.issuer); step++) {
        const login = page.locator('input[name="login"]');
        if (await login.count()) {
          await login.fill('carol');
          await page.locator('input[name="password"]').fill('x');
        }
        const before = page.url();
        await Promise.all([page.waitForURL((u) => u.href !== before), page.locator('button[type="submit"]').click()]);
      }
      await page.waitForURL((u) => u.href.startsWith(k.url) && !u.pathname.startsWith('/api/'));
      return new URL(page.url());
    };
    expect((await signIn('/submit?x=1')).href).toBe(`${k.url}/submit?x=1`);
    for (const evil of ['//evil.example/', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
      expect((await signIn(evil)).href).toBe(`${k.url}/`);
    }
    await context.close();
  });

  it('refuses a callback this browser did not start, with a clear page', async () => {
    const res = await fetch(`${k.url}/api/v1/callback?code=abc&state=${'A'.repeat(43)}`, { headers: { cookie: `kiln_login=${'A'.repeat(43)}` } });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('expired or was already finished');
    const unbound = await fetch(`${k.url}/api/v1/callback?code=abc&state=xyz`);
    expect(unbound.status).toBe(400);
    expect(await unbound.text()).toContain('not started in this browser');
  });
});

describe('local mode: the one-time link `kiln start` prints', () => {
  let db: { url: string; drop(): Promise<void> };
  let proc: KilnProcess;

  beforeAll(async () => {
    db = await createTestDatabase();
    proc = startKilnProcess('start', db.url, 'web-signin-local', { KILN_EXECUTOR: 'noop', HOST: '127.0.0.1', KILN_LOCAL_USER: 'dana' });
  });
  afterAll(async () => {
    await proc?.stop();
    await db?.drop();
  });

  it('signs the browser in once, as the local user, and refuses a second use with a clear page', async () => {
    const link = await waitFor(
      async () => /(http:\/\/127\.0\.0\.1:\d+\/api\/v1\/login\?code=[A-Za-z0-9_-]{43})/.exec(proc.output())?.[1],
      30_000,
      `kiln start to print a sign-in link; output so far:\n${proc.output()}`,
    );
    const origin = new URL(link).origin;
    const { context, offsite } = await offlineContext(origin);
    const page = await context.newPage();
    await page.goto(link);
    await page.waitForURL(`${origin}/`);
    await page.getByTestId('user-name').waitFor();
    expect(await page.getByTestId('user-name').textContent()).toBe('dana');
    await screenshot(page, 'web-signin-local-1-signed-in');
    expect(await sessionInPage(page)).toEqual({ status: 200, body: { user: { id: 'dana', name: 'dana' } } });

    const other = await (await offlineContext(origin)).context.newPage();
    const again = await other.goto(link);
    expect(again?.status()).toBe(410);
    await other.getByText('This sign-in link was already used.').waitFor();
    await screenshot(other, 'web-signin-local-2-link-used');
    expect((await sessionInPage(other)).status).toBe(401);
    expect(offsite).toEqual([]);
    await other.context().close();
    await context.close();
  });
});
