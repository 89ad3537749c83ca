import AxeBuilder from '@axe-core/playwright';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobHistoryDocument, JobTicksDocument, KilnClient, SubmitJobDocument, TriggerJobDocument } from '../src/sdk/index.js';
import { kilnContext, launchBrowser, PHONE, screenshot, type PageWatch } from './helpers/browser.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { signIn } from './helpers/webSession.js';

// The schedule page and the editor in Chromium (issue 12, items 5, 6 and 7;
// docs/design.md#schedule-page, docs/design.md#job-editor).

const USER = 'sched-web';
let k: TestKiln;
let browser: Browser;
let api: KilnClient;

beforeAll(async () => {
  [k, browser] = await Promise.all([startTestKiln({ env: { KILN_EXECUTOR: 'noop' } }), launchBrowser()]);
  api = new KilnClient({ url: k.url, token: await k.token(USER) });
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

/** Serious and critical axe-core violations of the page as it is now, as readable lines. */
async function seriousViolations(page: Page): Promise<string[]> {
  const { violations } = await new AxeBuilder({ page } as never).analyze();
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

interface ShownTick {
  fireTime: string;
  outcome: string;
  execution: string | null;
}

/** The timeline as the page shows it, newest first: fire time, outcome, linked execution id. */
function shownTicks(page: Page): Promise<ShownTick[]> {
  return page.$$eval('[data-testid="tick"]', (items) =>
    items.map((li) => ({
      fireTime: li.getAttribute('data-fire-time') ?? '',
      outcome: li.getAttribute('data-outcome') ?? '',
      execution: li.querySelector('a[href^="/executions/"]')?.getAttribute('href')?.replace('/executions/', '') ?? null,
    })),
  );
}

describe('the schedule page', () => {
  it('shows the PAUSED ticks of a 5 s pause between FIRED ones, live, as the ledger from the API has them', async () => {
    const spec = 'jobs:\n  - name: EverySecond\n    schedule: "* * * * * *"\n    timezone: Europe/Paris\n    steps: [{run: "true"}]\n';
    const [job] = (await api.request(SubmitJobDocument, { spec })).submitJob.jobs;
    const { context, page, watch } = await signedInPage();
    await page.goto(`${k.url}/jobs/${job!.id}`);
    await page.getByRole('heading', { name: 'EverySecond', level: 1 }).waitFor();
    // The job file as submitted, line by line, and ten fire times with their offset in Paris.
    expect(await page.locator('[data-testid="job-file"] tr').count()).toBe(spec.split('\n').length - 2);
    await expect.poll(() => page.locator('[data-testid="next-fires"] li').count()).toBe(10);
    expect(await page.locator('[data-testid="next-fires"] li').first().textContent()).toMatch(/UTC\+01:00/);
    // Nothing below reloads: a marker set now must survive to the end.
    await page.evaluate(() => ((globalThis as Record<string, unknown>).stayed = true));

    const fired = () => shownTicks(page).then((ticks) => ticks.filter((t) => t.outcome === 'FIRED').length);
    await expect.poll(fired, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    await page.waitForTimeout(5000);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    // Two FIRED ticks newer than the newest PAUSED one: the page follows the ledger after the pause.
    await expect
      .poll(
        async () => {
          const ticks = await shownTicks(page);
          const lastPaused = ticks.findIndex((t) => t.outcome === 'PAUSED');
          return lastPaused < 0 ? 0 : ticks.slice(0, lastPaused).filter((t) => t.outcome === 'FIRED').length;
        },
        { timeout: 20_000 },
      )
      .toBeGreaterThanOrEqual(2);

    // The ledger from the API, then the page once it holds every tick of it: the page's ticks up
    // to the API's newest are exactly the API's, in the same order with the same runs.
    const ledger = (await api.request(JobTicksDocument, { id: job!.id, first: 50 })).job!.ticks.edges.map((e) => ({
      fireTime: e.node.fireTime,
      outcome: e.node.outcome,
      execution: e.node.execution?.id ?? null,
    }));
    const newest = Date.parse(ledger[0]!.fireTime);
    const upToNewest = async () => (await shownTicks(page)).filter((t) => Date.parse(t.fireTime) <= newest);
    await expect.poll(upToNewest, { timeout: 10_000 }).toEqual(ledger);

    // Oldest first: FIRED, then the pause's PAUSED ticks, then FIRED again.
    const outcomes = ledger.map((t) => t.outcome).reverse();
    const firstPaused = outcomes.indexOf('PAUSED');
    const lastPaused = outcomes.lastIndexOf('PAUSED');
    expect(outcomes.slice(0, firstPaused)).toContain('FIRED');
    expect(outcomes.slice(lastPaused + 1)).toContain('FIRED');
    expect(outcomes.slice(firstPaused, lastPaused + 1).every((o) => o === 'PAUSED')).toBe(true);
    // 5 s paused at one tick a second, with room for two busy cores around the clicks.
    expect(lastPaused - firstPaused + 1).toBeGreaterThanOrEqual(3);

    // Each outcome carries a colour and a word: PAUSED and FIRED differ in both.
    const look = (outcome: string) =>
      page.locator(`[data-testid="tick"][data-outcome="${outcome}"]`).first().evaluate((li) => ({ colour: (globalThis as any).getComputedStyle(li).borderLeftColor as string, text: li.textContent ?? '' }));
    const [firedLook, pausedLook] = [await look('FIRED'), await look('PAUSED')];
    expect(firedLook.colour).not.toBe(pausedLook.colour);
    expect(firedLook.text).toMatch(/fired/);
    expect(pausedLook.text).toMatch(/paused/);
    // Times read in the job's zone, with the offset.
    expect(await page.locator('[data-testid="tick"] time').first().textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+01:00$/);

    expect(await page.evaluate(() => (globalThis as Record<string, unknown>).stayed)).toBe(true);
    await screenshot(page, 'web-schedule-timeline');
    expect(await seriousViolations(page)).toEqual([]);
    expect(watch.offsite).toEqual([]);
    expect(watch.errors).toEqual([]);
    // The job stops here, or its ticks would go on for the rest of the file.
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    await context.close();
  }, 60_000);

  it('pages the history of 25 runs, 20 at a time, forward and back, and fits a phone', async () => {
    const spec = 'jobs:\n  - name: ManyRuns\n    concurrency: queue\n    steps: [{run: "true"}]\n';
    const [job] = (await api.request(SubmitJobDocument, { spec })).submitJob.jobs;
    for (let i = 0; i < 24; i++) await api.request(TriggerJobDocument, { id: job!.id });
    const byApi = async (after: string | null) => (await api.request(JobHistoryDocument, { jobId: job!.id, first: 20, after })).executions;
    const first = await byApi(null);
    const second = await byApi(first.pageInfo.endCursor);
    expect(second.edges).toHaveLength(5);

    const { context, page, watch } = await signedInPage(PHONE);
    await page.goto(`${k.url}/jobs/${job!.id}`);
    const rows = () => page.locator('[data-testid="history-row"] a').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
    const ids = (edges: Array<{ node: { id: string } }>) => edges.map((e) => `/executions/${e.node.id}`);
    await expect.poll(rows).toEqual(ids(first.edges));
    await page.getByRole('button', { name: 'Older' }).click();
    await expect.poll(rows).toEqual(ids(second.edges));
    expect(await page.getByRole('button', { name: 'Older' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Newer' }).click();
    await expect.poll(rows).toEqual(ids(first.edges));
    // Nothing on the phone's page is wider than its screen (the table scrolls in its own box).
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth as number)).toBeLessThanOrEqual(PHONE.width);
    await screenshot(page, 'web-schedule-phone');
    expect(await seriousViolations(page)).toEqual([]);
    expect(watch.offsite).toEqual([]);
    expect(watch.errors).toEqual([]);
    await context.close();
  }, 40_000);
});

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
    await expect.poll(() => diagnostic.count()).toBe(1);
    expect(await diagnostic.getAttribute('data-line')).toBe('4');
    expect(await diagnostic.getAttribute('data-column')).toBe('15');
    expect(await diagnostic.textContent()).toMatch(/line 4, column 15.*minute.*jobs\[0\]\.schedule/);
    // The gutter marks line 4 and the underline sits on the value of line 4.
    expect(await page.locator('[data-testid="gutter"] [data-diagnostic="error"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-line')))).toEqual(['4']);
    expect(await page.locator('mark.code-mark').evaluateAll((els) => els.map((e) => [e.getAttribute('data-line'), e.textContent]))).toEqual([['4', '"61 * * * *"']]);
    await screenshot(page, 'web-editor-diagnostic');
    expect(await seriousViolations(page)).toEqual([]);

    // Submitting it anyway is refused with the same diagnostic, and the text is kept as it was.
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.getByTestId('submit-error').waitFor();
    expect(await input.inputValue()).toBe(BAD);
    expect(await diagnostic.getAttribute('data-line')).toBe('4');

    // Fixing the field by typing: the diagnostic goes once the check of the new text answers.
    await input.fill(FIXED);
    await expect.poll(() => page.getByTestId('check-status').textContent()).toBe('No problems found');
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
    await expect.poll(() => heldSeen).toBe(true);
    await input.fill(FIXED);
    await expect.poll(() => page.getByTestId('check-status').textContent()).toBe('No problems found');
    release();
    // The late answer (one diagnostic, for BAD) arrives now and must not be shown over FIXED's.
    await page.waitForTimeout(1000);
    expect(await page.getByTestId('check-status').textContent()).toBe('No problems found');
    expect(await page.getByTestId('diagnostic').count()).toBe(0);
    // Nothing on the phone's page is wider than its screen.
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth as number)).toBeLessThanOrEqual(PHONE.width);
    await input.fill(BAD);
    await expect.poll(() => page.getByTestId('diagnostic').count()).toBe(1);
    await screenshot(page, 'web-editor-phone');
    expect(await seriousViolations(page)).toEqual([]);
    await context.close();
  }, 30_000);
});
