import AxeBuilder from '@axe-core/playwright';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnClient } from '@kiln/sdk';
import { JobDocument, TriggerJobDocument } from '@kiln/sdk';
import { kilnContext, launchBrowser, PHONE, screenshot, type PageWatch } from './helpers/browser.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submit } from './helpers/ledger.js';
import { LiveRun } from './helpers/liveRun.js';
import { signIn } from './helpers/webSession.js';

let k: TestKiln;
let browser: Browser;
let alice: KilnClient;
const ids: Record<string, string> = {};
const watches: PageWatch[] = [];
const contexts: BrowserContext[] = [];

const JOBS = `jobs:
  - name: Deploy
    schedule: "@every 1h"
    timezone: Europe/Paris
    steps: [{run: "true"}]
  - name: Nightly
    schedule: "0 2 * * *"
    steps: [{run: "true"}]
  - name: Quiet
    schedule: "30 9 * * 1-5"
    steps: [{run: "true"}]
`;

/** A signed-in page of `user` on the board, its first rows drawn. */
async function boardOf(user: string, viewport?: { width: number; height: number }): Promise<Page> {
  const { context, watch } = await kilnContext(browser, new URL(k.url).origin, viewport);
  contexts.push(context);
  watches.push(watch);
  await signIn(context, k, user);
  const page = await context.newPage();
  // The board's subscription is live once its `subscribe` frame went out (and the server read it).
  const subscribed = new Promise<void>((resolve) => {
    page.on('websocket', (ws) => ws.on('framesent', (frame) => /"type":"subscribe"/.test(String(frame.payload)) && resolve()));
  });
  await page.goto(`${k.url}/`);
  await page.waitForSelector('[data-testid=board] > li');
  await subscribed;
  await new Promise((r) => setTimeout(r, 300));
  return page;
}

const row = (page: Page, job: string) => page.locator(`[data-testid=board] > li[data-job="${job}"]`);
const stateOf = (page: Page, job: string) => row(page, job).locator('.job-state [data-status]').first().getAttribute('data-status');

beforeAll(async () => {
  [k, browser] = await Promise.all([startTestKiln({ worker: false }), launchBrowser()]);
  const token = await k.token('alice');
  alice = new KilnClient({ url: k.url, token });
  [ids.Deploy, ids.Nightly, ids.Quiet] = await submit(k.gql, token, JOBS);
  await submit(k.gql, await k.token('bob'), `jobs:\n  - name: BobsJob\n    schedule: "@daily"\n    steps: [{run: "true"}]\n`);
  // Nightly's ledger: fired two days ago, then a fire time missed yesterday (the newest).
  await k.kiln.deps.pool.query(
    `insert into ticks (job_id, fire_time, outcome, recorded_at) values ($1, now() - interval '2 days', 'FIRED', now()), ($1, now() - interval '1 day', 'MISSED', now())`,
    [ids.Nightly],
  );
});
afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await k?.stop();
});

describe('the board', () => {
  it("shows each user only their own jobs, with the schedule in words and its time zone", async () => {
    const [mine, bobs] = await Promise.all([boardOf('alice'), boardOf('bob')]);
    expect(await mine.locator('[data-testid=board] > li').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')))).toEqual(['Deploy', 'Nightly', 'Quiet']);
    expect(await bobs.locator('[data-testid=board] > li').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')))).toEqual(['BobsJob']);
    expect(await mine.getByTestId('user-name').textContent()).toBe('alice');
    expect(await row(mine, 'Deploy').getByTestId('schedule').textContent()).toBe('every hour (Europe/Paris)');
    expect(await row(mine, 'Quiet').getByTestId('schedule').textContent()).toBe('at 09:30 on Monday–Friday (UTC)');
    expect(await row(mine, 'Deploy').getByTestId('next').locator('time').getAttribute('datetime')).toMatch(/^\d{4}-/);
    expect(await stateOf(mine, 'Deploy')).toBe('IDLE');
    await screenshot(mine, 'board-alice');
    await screenshot(bobs, 'board-bob');
  });

  it("shows a MISSED tick as missed, never in the succeeded colour", async () => {
    const page = await boardOf('alice');
    const badge = row(page, 'Nightly').getByTestId('last-tick').locator('[data-status]');
    expect(await badge.getAttribute('data-status')).toBe('MISSED');
    expect(await badge.textContent()).toContain('missed');
    const colours = await badge.evaluate((el) => {
      const view = el.ownerDocument.defaultView!;
      const probe = el.ownerDocument.createElement('span');
      probe.className = 'status-badge status-succeeded';
      el.ownerDocument.body.append(probe);
      const green = view.getComputedStyle(probe);
      const mine = view.getComputedStyle(el);
      const out = { fg: mine.color, bg: mine.backgroundColor, greenFg: green.color, greenBg: green.backgroundColor };
      probe.remove();
      return out;
    });
    expect(colours.fg).not.toBe(colours.greenFg);
    expect(colours.bg).not.toBe(colours.greenBg);
  });

  it('follows a run live, without a reload: queued, running with a ticking duration, succeeded', async () => {
    const page = await boardOf('alice');
    const loads: string[] = [];
    page.on('framenavigated', (f) => loads.push(f.url()));
    const { triggerJob } = await alice.request(TriggerJobDocument, { id: ids.Deploy! });
    await waitFor(async () => ((await stateOf(page, 'Deploy')) === 'QUEUED' ? true : undefined), 10_000, 'Deploy queued on the board');
    const run = new LiveRun(k.kiln.deps.pool, triggerJob.id);
    await run.start();
    await waitFor(async () => ((await stateOf(page, 'Deploy')) === 'RUNNING' ? true : undefined), 10_000, 'Deploy running on the board');
    const duration = row(page, 'Deploy').locator('.live-duration');
    const first = await duration.textContent();
    await waitFor(async () => ((await duration.textContent()) !== first ? true : undefined), 5_000, 'the live duration to tick');
    await screenshot(page, 'board-running');
    await run.finish('SUCCEEDED');
    await waitFor(async () => ((await stateOf(page, 'Deploy')) === 'IDLE' ? true : undefined), 10_000, 'Deploy idle again');
    const strip = row(page, 'Deploy').locator('.run-strip a');
    expect(await strip.count()).toBe(1);
    expect(await strip.first().getAttribute('href')).toBe(`/executions/${triggerJob.id}`);
    expect(await strip.first().getAttribute('aria-label')).toMatch(/^#1 succeeded, [\d.]+ (ms|s)$/);
    expect(loads).toEqual([]);
  });

  it('triggers, pauses and resumes from the row, as the API then shows', async () => {
    const page = await boardOf('alice');
    await page.getByRole('button', { name: 'Pause Quiet' }).click();
    await page.getByRole('button', { name: 'Resume Quiet' }).waitFor();
    expect((await alice.request(JobDocument, { id: ids.Quiet! })).job!.paused).toBe(true);
    expect(await stateOf(page, 'Quiet')).toBe('PAUSED');
    expect(await row(page, 'Quiet').getByTestId('next').textContent()).toBe('paused');
    await page.getByRole('button', { name: 'Resume Quiet' }).click();
    await page.getByRole('button', { name: 'Pause Quiet' }).waitFor();
    expect((await alice.request(JobDocument, { id: ids.Quiet! })).job!.paused).toBe(false);
    await page.getByRole('button', { name: 'Trigger Quiet' }).click();
    const last = await waitFor(async () => (await alice.request(JobDocument, { id: ids.Quiet! })).job!.lastExecution ?? undefined, 10_000, 'the triggered run');
    expect(last).toMatchObject({ trigger: 'MANUAL', status: 'QUEUED' });
    await waitFor(async () => ((await stateOf(page, 'Quiet')) === 'QUEUED' ? true : undefined), 10_000, 'Quiet queued on the board');
  });

  it('has no serious or critical accessibility violations, on a laptop and on a phone', async () => {
    for (const [name, viewport] of [['laptop', undefined], ['phone', PHONE]] as const) {
      const page = await boardOf('alice', viewport);
      const { violations } = await new AxeBuilder({ page }).analyze();
      const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
      await screenshot(page, `board-${name}`);
    }
  });

  it('sent nothing anywhere but to Kiln, and threw no error', () => {
    for (const w of watches) {
      expect(w.offsite).toEqual([]);
      expect(w.errors).toEqual([]);
    }
  });
});
