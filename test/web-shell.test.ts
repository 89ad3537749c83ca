import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { kilnContext, launchBrowser, screenshot } from './helpers/browser.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

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

  it('boots in chromium with no request leaving Kiln and no error (a CSP refusal would be one)', async () => {
    const { context, watch } = await kilnContext(browser, new URL(k.url).origin);
    const page = await context.newPage();
    await page.goto(`${k.url}/jobs/abc`);
    // The session gate ran: whatever the session answered, the page rendered past "Loading".
    await page.waitForFunction(() => {
      const main = (globalThis as any).document.querySelector('main');
      return main !== null && main.getAttribute('aria-busy') === null;
    });
    await screenshot(page, 'web-shell');
    expect(watch.offsite).toEqual([]);
    expect(watch.errors.filter((e) => !/the server responded with a status of 40[14]/.test(e))).toEqual([]);
    await context.close();
  });
});
