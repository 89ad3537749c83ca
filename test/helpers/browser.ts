import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium package (apt-get install chromium; .ci/run installs it). */
export const CHROMIUM = '/usr/bin/chromium';
/** Headless and offline: without these, Chromium reaches out to Google's services at start. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Screenshots of the web tests (gitignored; CI keeps them as artifacts). */
export const SCREENSHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));

export const LAPTOP = { width: 1366, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** A headless Chromium; each context it opens starts from a fresh, temporary profile. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

/** Saves a full-page screenshot as test-artifacts/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** What a context's pages did that a test should see fail: requests leaving Kiln, errors, CSP refusals. */
export interface PageWatch {
  offsite: string[];
  errors: string[];
}

/**
 * A context whose requests may reach only `origin` (anything else is aborted and recorded),
 * with every page's uncaught errors and console errors (CSP refusals among them) recorded.
 */
export async function kilnContext(browser: Browser, origin: string, viewport = LAPTOP): Promise<{ context: BrowserContext; watch: PageWatch }> {
  const context = await browser.newContext({ viewport });
  const watch: PageWatch = { offsite: [], errors: [] };
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
    watch.offsite.push(url);
    return route.abort();
  });
  context.on('page', (page) => {
    page.on('pageerror', (err) => watch.errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') watch.errors.push(msg.text());
    });
  });
  return { context, watch };
}

/**
 * Records, by the page's own clock (epoch ms), when each build-log line matching `/^<word> (\d)$/`
 * first shows on the page (the build page's `.log-line .log-text` rows); read them with
 * {@link lineTimes}. Call before the page loads.
 */
export async function recordLineTimes(page: Page, word: string): Promise<void> {
  await page.addInitScript((w: string) => {
    const g = globalThis as any;
    g.__seen = {};
    const pattern = new RegExp(`^${w} (\\d)$`);
    new g.MutationObserver(() => {
      for (const el of g.document.querySelectorAll('.log-line .log-text')) {
        const m = pattern.exec(el.textContent);
        if (m && g.__seen[m[1]] === undefined) g.__seen[m[1]] = Date.now();
      }
    }).observe(g.document, { childList: true, subtree: true, characterData: true });
  }, word);
}

/** What {@link recordLineTimes} saw: the digit of each line, and when it showed. */
export async function lineTimes(page: Page): Promise<Record<string, number>> {
  return page.evaluate(() => (globalThis as any).__seen as Record<string, number>);
}
