import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnClient, SubmitJobDocument, TriggerJobDocument } from '@kiln/sdk';
import { CHROMIUM, CHROMIUM_FLAGS } from './helpers/browser.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { LiveRun } from './helpers/liveRun.js';

const ARTIFACTS = fileURLToPath(new URL('./.artifacts/', import.meta.url));

let k: TestKiln;
let token: string;
let executionId: string;
let profile: string;
let context: BrowserContext;
let page: Page;
/** Every request the page tried to send anywhere but Kiln (all refused). */
const offsite: string[] = [];
const pageErrors: string[] = [];

/** The page's document, for code that runs in the browser (this project compiles without the DOM types). */
declare const document: { querySelector(selector: string): unknown; getElementById(id: string): { textContent: string | null } | null; title: string };

/** The response pane's text. */
function responseText(): Promise<string> {
  return page.evaluate(() => {
    const response = document.querySelector('.graphiql-response .CodeMirror') as unknown as { CodeMirror: { getValue(): string } } | null;
    return response?.CodeMirror.getValue() ?? '';
  });
}

/** Replaces the query editor's text and runs it; resolves with the response pane's text once it matches `expectText`. */
async function run(query: string, expectText: RegExp): Promise<string> {
  await page.evaluate((q) => {
    const editor = document.querySelector('.graphiql-query-editor .CodeMirror') as unknown as { CodeMirror: { setValue(v: string): void } };
    editor.CodeMirror.setValue(q);
  }, query);
  await page.click('.graphiql-execute-button');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await responseText();
    if (expectText.test(text)) return text;
    if (Date.now() > deadline) {
      await page.screenshot({ path: path.join(ARTIFACTS, 'playground-failure.png') });
      throw new Error(`the response pane never matched ${expectText}; it shows:\n${text}\n(page errors: ${pageErrors.join('; ') || 'none'})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  token = await k.token('alice');
  const client = new KilnClient({ url: k.url, token });
  const { submitJob } = await client.request(SubmitJobDocument, { spec: 'jobs:\n  - name: NightlyBuild\n    schedule: "0 2 * * *"\n    steps: [{run: "make"}]\n' });
  executionId = (await client.request(TriggerJobDocument, { id: submitJob.jobs[0]!.id })).triggerJob.id;
  const live = new LiveRun(k.kiln.deps.pool, executionId);
  await live.start();
  live.lines(1, 3);
  await live.finish();

  profile = await mkdtemp(path.join(tmpdir(), 'kiln-chromium-'));
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport: { width: 1280, height: 800 } });
  const origin = new URL(k.url).origin;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
    offsite.push(url);
    return route.abort();
  });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await mkdir(ARTIFACTS, { recursive: true });
});
afterAll(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await k?.stop();
});

describe('the playground', () => {
  it('is what a browser gets at /graphql, and it loads with no network', async () => {
    const res = await page.goto(`${k.url}/graphql`);
    expect(res!.status()).toBe(200);
    expect(res!.headers()['content-security-policy']).toMatch(/script-src 'self'/);
    await page.waitForSelector('.graphiql-container', { timeout: 20_000 });
    expect(await page.title()).toMatch(/Kiln/);
  });

  it('runs a query with the token typed into the page and shows the result', async () => {
    await page.fill('#kiln-token', token);
    await page.waitForFunction(() => document.getElementById('kiln-status')?.textContent === 'token set');
    const text = await run('{ me { id } jobs { edges { node { name schedule } } } }', /NightlyBuild/);
    expect(JSON.parse(text)).toEqual({ data: { me: { id: 'alice' }, jobs: { edges: [{ node: { name: 'NightlyBuild', schedule: '0 2 * * *' } }] } } });
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground.png') });
  });

  it('runs a subscription over graphql-ws and a mutation over HTTP', async () => {
    const sub = await run(`subscription { executionLogs(executionId: "${executionId}", afterSeq: 2) { seq stream text } }`, /line 3/);
    expect(JSON.parse(sub)).toEqual({ data: { executionLogs: { seq: 3, stream: 'STDOUT', text: 'line 3' } } });
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-subscription.png') });
    const mutation = await run(`mutation { cancelExecution(id: "${executionId}") { status } }`, /SUCCEEDED/);
    expect(JSON.parse(mutation)).toEqual({ data: { cancelExecution: { status: 'SUCCEEDED' } } });
  });

  it('sent nothing anywhere but to Kiln, and threw no error', () => {
    expect(offsite).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
