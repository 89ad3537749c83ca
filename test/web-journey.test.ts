import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations } from './helpers/axeSerious.js';
import { kilnContext, launchBrowser, lineTimes, recordLineTimes, screenshot } from './helpers/browser.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { signIn } from './helpers/webSession.js';

/**
 * Issue 12, item 3, as a user walks it (docs/design.md#web-app): a one-off job typed into the
 * editor, found on the board, followed live on its build page in a real container.
 */
let k: TestKiln;
let browser: Browser;

beforeAll(async () => {
  await requireDocker();
  [k, browser] = await Promise.all([startTestKiln(), launchBrowser()]);
});
afterAll(async () => {
  await browser?.close();
  await k?.stop();
});

const JOB = `jobs:
  - name: Journey
    image: ${TEST_IMAGE}
    steps:
      - name: colours
        run: printf '\\033[31mred alert\\033[0m plain\\n'
      - name: ticks
        run: sleep 3; for i in 1 2 3 4 5; do echo "beat $i"; sleep 1; done
      - name: breaks
        run: echo boom; exit 4
`;

describe('editor -> board -> build page', () => {
  it('submits in the editor, shows the job on the board, and follows its build live to the failed step', async () => {
    const { context, watch } = await kilnContext(browser, new URL(k.url).origin);
    await signIn(context, k, 'walker');
    const page = await context.newPage();
    await recordLineTimes(page, 'beat');

    await page.goto(`${k.url}/submit`);
    await page.getByTestId('job-file-input').fill(JOB);
    await expect.poll(() => page.getByTestId('check-status').textContent(), { timeout: 10_000 }).toBe('No problems found');
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.getByTestId('submitted').waitFor({ timeout: 10_000 });

    // The board, reached by its link, lists the new job with its run in the strip.
    await page.getByRole('link', { name: 'Board' }).first().click();
    const row = page.locator('li.job-row[data-job="Journey"]');
    await row.waitFor({ timeout: 10_000 });
    const run = row.locator('a.run').first();
    await run.waitFor({ timeout: 10_000 });
    await screenshot(page, 'journey-board');
    await run.click();

    await page.getByText('red alert').waitFor({ timeout: 30_000 });
    const red = await page.getByText('red alert').evaluate((el) => (globalThis as any).getComputedStyle(el).color as string);
    const [r, g, b] = red.match(/\d+/g)!.map(Number);
    expect(r, red).toBeGreaterThan(150);
    expect(g!, red).toBeLessThan(90);
    expect(b!, red).toBeLessThan(90);

    await page.locator('.status-badge[data-status="FAILED"]').first().waitFor({ timeout: 60_000 });
    const section = (step: number) => page.locator(`button.log-section[data-section="${step}"]`).first();
    await expect.poll(() => section(2).getAttribute('aria-expanded'), { timeout: 10_000 }).toBe('true');
    expect(await section(0).getAttribute('aria-expanded')).toBe('false');
    expect(await section(1).getAttribute('aria-expanded')).toBe('false');
    await page.getByText('boom', { exact: true }).waitFor();
    await screenshot(page, 'journey-build-failed');

    // Each beat on the page within 1 s of the server storing it (the page was open long before).
    const id = new URL(page.url()).pathname.split('/').pop()!;
    const { data } = await k.gql(`query($id: ID!) { execution(id: $id) { exitCode logs(limit: 1000) { text at } } }`, { id }, await k.token('walker'));
    expect(data!.execution.exitCode).toBe(4);
    const seen = await lineTimes(page);
    const latencies = data!.execution.logs
      .filter((l: { text: string }) => /^beat \d$/.test(l.text))
      .map((l: { text: string; at: string }) => seen[l.text.slice(5)]! - Date.parse(l.at));
    expect(latencies).toHaveLength(5);
    for (const ms of latencies) expect(ms).toBeLessThan(1000);
    console.log(`editor -> board -> build page: stored -> on the page (ms): ${latencies.join(', ')}`);

    expect(await seriousViolations(page)).toEqual([]);
    expect(watch.offsite).toEqual([]);
    await context.close();
  });
});
