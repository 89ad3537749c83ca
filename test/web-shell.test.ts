import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { kilnContext, launchBrowser, screenshot } from './helpers/browser.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { signIn } from './helpers/webSession.js';

let k: TestKiln;
let browser: Browser;

beforeAll(async () => {
  [k, browser] = await Promise.all([startTestKiln({ worker: false }), launchBrowser()]);
});
afterAll(async () => {
  await browser?.close();
  await k?.stop();
});

describe('the web app is served by Kiln', () => {
  it('answers index.html for each app route, uncached, under a strict content security policy', async () => {
    for (const route of ['/', '/executions/42', '/jobs/abc', '/submit']) {
      const res = await fetch(`${k.url}${route}`);
      expect(res.status, route).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain(`connect-src 'self' ws://${new URL(k.url).host}`);
      const html = await res.text();
      expect(html).toMatch(/<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js">/);
      // No inline script: every <script> has a src.
      expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull();
    }
  });

  it('caches hashed assets for good, and 404s what is neither a page nor a file', async () => {
    const html = await (await fetch(`${k.url}/`)).text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const asset = await fetch(`${k.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toMatch(/max-age=31536000.*immutable/);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${k.url}/assets/nope-123.js`)).status).toBe(404);
    expect((await fetch(`${k.url}/executions/1/extra`)).status).toBe(404);
    expect((await fetch(`${k.url}/index.html`)).status).toBe(404);
    expect((await fetch(`${k.url}/favicon.svg`)).headers.get('content-type')).toMatch(/svg/);
    // The API keeps its meaning beside the app.
    expect((await k.gql('{ me { id } }', {}, await k.token('alice'))).data).toEqual({ me: { id: 'alice' } });
  });

  it('boots in chromium signed out with a sign-in link, and signs out from the header', async () => {
    const { context, watch } = await kilnContext(browser, new URL(k.url).origin);
    const page = await context.newPage();
    await page.goto(`${k.url}/jobs/abc`);
    const signInLink = page.getByRole('link', { name: 'Sign in' });
    expect(await signInLink.getAttribute('href')).toBe('/api/v1/login');
    await screenshot(page, 'web-shell-signed-out');

    await signIn(context, k, 'carol');
    await page.goto(`${k.url}/submit`);
    expect(await page.getByTestId('user-name').textContent()).toBe('carol');
    expect(await page.getByRole('link', { name: 'Submit a job' }).getAttribute('aria-current')).toBe('page');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    expect((await context.request.get(`${k.url}/api/v1/session`)).status()).toBe(401);

    expect(watch.offsite).toEqual([]);
    // The signed-out page's own 401 from /api/v1/session is the only console error allowed; a CSP refusal would be another.
    expect(watch.errors.filter((e) => !/the server responded with a status of 401/.test(e))).toEqual([]);
    await context.close();
  });
});
