import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobHistoryDocument, JobTicksDocument, KilnClient, SubmitJobDocument, TriggerJobDocument } from '@kiln/sdk';
import { seriousViolations } from './helpers/axeSerious.js';
import { kilnContext, launchBrowser, PHONE, screenshot, type PageWatch } from './helpers/browser.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { signIn } from './helpers/webSession.js';

// The schedule page in Chromium (issue 12, items 5 and 7; docs/design.md#schedule-page).

/** How long a page may take to show what it is waiting for, on two busy cores. */
const SOON = { timeout: 10_000 };
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
    // Ten were asked for; those already past by the time the test looks are not shown.
    await expect.poll(() => page.locator('[data-testid="next-fires"] li').count(), SOON).toBeGreaterThan(0);
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
    const byApi = async (after: string | null) => (await api.request(JobHistoryDocument, { jobId: job!.id, first: 20, after })).executions;
    // `queue` holds one queued run at a time: each trigger waits until none waits, the first for
    // the run the submit queued (a one-off), each next for the trigger's own.
    const noneQueued = async () => (await byApi(null)).edges.every((e) => e.node.status !== 'QUEUED');
    for (let i = 0; i < 24; i++) {
      await expect.poll(noneQueued, { timeout: 10_000, interval: 50 }).toBe(true);
      await api.request(TriggerJobDocument, { id: job!.id });
    }
    const first = await byApi(null);
    const second = await byApi(first.pageInfo.endCursor);
    expect(second.edges).toHaveLength(5);

    const { context, page, watch } = await signedInPage(PHONE);
    await page.goto(`${k.url}/jobs/${job!.id}`);
    const rows = () => page.locator('[data-testid="history-row"] a').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
    const ids = (edges: Array<{ node: { id: string } }>) => edges.map((e) => `/executions/${e.node.id}`);
    await expect.poll(rows, SOON).toEqual(ids(first.edges));
    await page.getByRole('button', { name: 'Older' }).click();
    await expect.poll(rows, SOON).toEqual(ids(second.edges));
    expect(await page.getByRole('button', { name: 'Older' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Newer' }).click();
    await expect.poll(rows, SOON).toEqual(ids(first.edges));
    // Nothing on the phone's page is wider than its screen (the table scrolls in its own box).
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth as number)).toBeLessThanOrEqual(PHONE.width);
    await screenshot(page, 'web-schedule-phone');
    // Another user's browser gets "not found" for this job, as for an id that does not exist.
    const other = await kilnContext(browser, new URL(k.url).origin);
    await signIn(other.context, k, 'someone-else');
    const theirs = await other.context.newPage();
    await theirs.goto(`${k.url}/jobs/${job!.id}`);
    await theirs.getByRole('heading', { name: 'Job not found' }).waitFor();
    expect(await theirs.getByTestId('history-row').count()).toBe(0);
    await other.context.close();
    expect(await seriousViolations(page)).toEqual([]);
    expect(watch.offsite).toEqual([]);
    expect(watch.errors).toEqual([]);
    await context.close();
  }, 40_000);
});

