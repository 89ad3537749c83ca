import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from './helpers/axeSerious.js';
import { kilnContext, launchBrowser, PHONE, screenshot, type PageWatch } from './helpers/browser.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { signIn } from './helpers/webSession.js';

// The job editor in Chromium (issue 12, items 6 and 7; docs/design.md#job-editor).

/** How long a page may take to show what it is waiting for, on two busy cores. */
const SOON = { timeout: 10_000 };
const USER = 'editor-web';
let k: TestKiln;
let browser: Browser;

beforeAll(async () => {
  [k, browser] = await Promise.all([startTestKiln({ env: { KILN_EXECUTOR: 'noop' } }), launchBrowser()]);
});
afterAll(async () => {
  await browser?.close();
  await k?.stop();
});

async function signedInPage(viewport?: { width: number; height: number }): Promise<{ context: BrowserContext; page: Page; watch: PageWatch }> {
  const { context, watch } = await kilnContext(browser, new URL(k.url).origin, viewport);
  await signIn(context, k, USER);
  return { context, page: await context.newPage(), watch };
}

const BAD = `jobs:
  - name: EditorJob
    steps: [{run: "echo hi"}]
    schedule: "61 * * * *"
  - name: EditorOnce
    steps: [{run: "echo once"}]
`;
const FIXED = BAD.replace('"61 * * * *"', '"5 * * * *"');

describe('the editor', () => {
  it('shows a bad cron field at its line as you type, none once fixed, and submits the file', async () => {
    const { context, page, watch } = await signedInPage();
    await page.goto(`${k.url}/submit`);
    const input = page.getByTestId('job-file-input');
    await input.fill(BAD);
    const diagnostic = page.getByTestId('diagnostic');
    await expect.poll(() => diagnostic.count(), SOON).toBe(1);
    expect(await diagnostic.getAttribute('data-line')).toBe('4');
    expect(await diagnostic.getAttribute('data-column')).toBe('15');
    expect(await diagnostic.textContent()).toMatch(/line 4, column 15.*minute.*jobs\[0\]\.schedule/);
    // The gutter marks line 4 and the underline sits on the value of line 4.
    expect(await page.locator('[data-testid="gutter"] [data-diagnostic="error"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-line')))).toEqual(['4']);
    expect(await page.locator('mark.code-mark').evaluateAll((els) => els.map((e) => [e.getAttribute('data-line'), e.textContent]))).toEqual([['4', '"61 * * * *"']]);
    // Choosing the diagnostic puts the caret at its line and column.
    await diagnostic.getByRole('button').click();
    const caret = await input.evaluate((el) => [(el as unknown as { selectionStart: number }).selectionStart, el === (globalThis as any).document.activeElement]);
    expect(caret).toEqual([BAD.indexOf('"61'), true]);
    await screenshot(page, 'web-editor-diagnostic');
    expect(await seriousViolations(page)).toEqual([]);

    // Submitting it anyway is refused with the same diagnostic, and the text is kept as it was.
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.getByTestId('submit-error').waitFor();
    expect(await input.inputValue()).toBe(BAD);
    expect(await diagnostic.getAttribute('data-line')).toBe('4');

    // Fixing the field by typing: the diagnostic goes once the check of the new text answers.
    await input.fill(FIXED);
    await expect.poll(() => page.getByTestId('check-status').textContent(), SOON).toBe('No problems found');
    expect(await diagnostic.count()).toBe(0);
    expect(await page.locator('[data-testid="gutter"] [data-diagnostic]').count()).toBe(0);

    await page.getByRole('button', { name: 'Submit' }).click();
    const submitted = page.getByTestId('submitted');
    await submitted.waitFor();
    expect(await submitted.getByRole('link', { name: /run #1/ }).count()).toBe(1);
    await screenshot(page, 'web-editor-submitted');
    await submitted.getByRole('link', { name: 'EditorJob' }).click();
    await page.getByRole('heading', { name: 'EditorJob', level: 1 }).waitFor();
    expect(await page.getByTestId('job-file').textContent()).toContain('schedule: "5 * * * *"');
    // The API has the jobs the page showed.
    const res = await k.gql<{ jobs: { edges: Array<{ node: { name: string } }> } }>('{ jobs { edges { node { name } } } }', {}, await k.token(USER));
    expect(res.data!.jobs.edges.map((e) => e.node.name)).toEqual(expect.arrayContaining(['EditorJob', 'EditorOnce']));
    expect(watch.offsite).toEqual([]);
    expect(watch.errors).toEqual([]);
    await context.close();
  }, 40_000);

  it('drops a slow answer for older text, and fits a phone', async () => {
    const { context, page } = await signedInPage(PHONE);
    // The check of the bad text is held back until the fixed text has been checked.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let heldSeen = false;
    await page.route('**/graphql', async (route) => {
      const body = route.request().postData() ?? '';
      if (body.includes('validateJobSpec') && body.includes('61 * * * *')) {
        heldSeen = true;
        await held;
      }
      await route.continue();
    });
    await page.goto(`${k.url}/submit`);
    const input = page.getByTestId('job-file-input');
    await input.fill(BAD);
    await expect.poll(() => heldSeen, SOON).toBe(true);
    await input.fill(FIXED);
    await expect.poll(() => page.getByTestId('check-status').textContent(), SOON).toBe('No problems found');
    const late = page.waitForResponse((res) => (res.request().postData() ?? '').includes('61 * * * *'));
    release();
    // The late answer (one diagnostic, for BAD) arrives now and must not be shown over FIXED's.
    await late;
    await page.waitForTimeout(300);
    expect(await page.getByTestId('check-status').textContent()).toBe('No problems found');
    expect(await page.getByTestId('diagnostic').count()).toBe(0);
    // Nothing on the phone's page is wider than its screen.
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth as number)).toBeLessThanOrEqual(PHONE.width);
    await input.fill(BAD);
    await expect.poll(() => page.getByTestId('diagnostic').count(), SOON).toBe(1);
    await screenshot(page, 'web-editor-phone');
    expect(await seriousViolations(page)).toEqual([]);
    await context.close();
  }, 30_000);
});
