import { readFile } from 'node:fs/promises';
import { buildSchema, parse, print, specifiedRules, validate, type DocumentNode } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { costRule } from '../src/http/queryCost.js';
import { readInZone } from '../src/schedule/schedule.js';
import {
  JobHistoryDocument,
  JobNextFiresDocument,
  JobScheduleDocument,
  JobTicksDocument,
  KilnClient,
  SubmitJobDocument,
  ValidateJobSpecDocument,
  PauseJobDocument,
} from '@kiln/sdk';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';

// The server side of the web app's schedule page and editor (docs/design.md#schedule-page).

let k: TestKiln;
let client: KilnClient;

beforeAll(async () => {
  k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop' } });
  client = new KilnClient({ url: k.url, token: await k.token('sched-alice') });
});
afterAll(() => k?.stop());

describe('a time zone reading of an instant', () => {
  it.each([
    ['2027-01-15T11:00:00.000Z', 'Europe/Paris', '2027-01-15T12:00:00', '+01:00'],
    ['2027-07-15T10:00:00.000Z', 'Europe/Paris', '2027-07-15T12:00:00', '+02:00'],
    // The instant the clocks of Paris jump from 02:00 to 03:00.
    ['2027-03-28T01:00:00.000Z', 'Europe/Paris', '2027-03-28T03:00:00', '+02:00'],
    ['2027-03-28T00:59:59.000Z', 'Europe/Paris', '2027-03-28T01:59:59', '+01:00'],
    ['2027-01-15T12:00:00.000Z', 'Asia/Kolkata', '2027-01-15T17:30:00', '+05:30'],
    ['2027-01-15T12:00:00.000Z', 'America/St_Johns', '2027-01-15T08:30:00', '-03:30'],
    ['2027-01-15T12:00:00.500Z', 'UTC', '2027-01-15T12:00:00', '+00:00'],
  ])('reads %s in %s as %s %s', (at, zone, wallClock, utcOffset) => {
    expect(readInZone(Date.parse(at), zone)).toEqual({ wallClock, utcOffset });
  });
});

describe('what the schedule page asks for', () => {
  it('gives the next fire times with their wall clock and offset, so a DST change shows', async () => {
    const spec = 'jobs:\n  - name: Monthly\n    schedule: "0 12 1 * *"\n    timezone: Europe/Paris\n    steps: [{run: "true"}]\n';
    const [job] = (await client.request(SubmitJobDocument, { spec })).submitJob.jobs;
    const { job: page } = await client.request(JobScheduleDocument, { id: job!.id });
    const fires = (await client.request(JobNextFiresDocument, { id: job!.id, count: 12 })).job!.nextFires;
    expect(fires).toHaveLength(12);
    for (const fire of fires) {
      // Noon in Paris on the 1st, whatever the offset; `at` is that wall clock minus the offset.
      expect(fire.wallClock).toMatch(/^\d{4}-\d{2}-01T12:00:00$/);
      const [h, m] = fire.utcOffset.slice(1).split(':').map(Number);
      const offsetMs = (fire.utcOffset.startsWith('-') ? -1 : 1) * (h! * 60 + m!) * 60_000;
      expect(Date.parse(`${fire.wallClock}Z`) - offsetMs).toBe(Date.parse(fire.at));
    }
    // Twelve months hold both a winter and a summer offset.
    expect(new Set(fires.map((f) => f.utcOffset))).toEqual(new Set(['+01:00', '+02:00']));
    // The job file is the job's own YAML as submitted.
    expect(page!.spec).toBe('name: Monthly\nschedule: "0 12 1 * *"\ntimezone: Europe/Paris\nsteps: [{run: "true"}]\n');

    await client.request(PauseJobDocument, { id: job!.id });
    expect((await client.request(JobNextFiresDocument, { id: job!.id })).job!.nextFires).toEqual([]);
  });

  it('pages the tick ledger and the history newest first, without gaps or repeats', async () => {
    const spec = 'jobs:\n  - name: EverySecond\n    schedule: "* * * * * *"\n    steps: [{run: "true"}]\n';
    const [job] = (await client.request(SubmitJobDocument, { spec })).submitJob.jobs;
    const id = job!.id;
    await waitFor(async () => {
      const { job: j } = await client.request(JobTicksDocument, { id, first: 6 });
      return j!.ticks.edges.length === 6 ? true : undefined;
    }, 20_000, 'six ticks');
    await client.request(PauseJobDocument, { id });
    const all = (await client.request(JobTicksDocument, { id, first: 100 })).job!.ticks.edges.map((e) => e.node);
    const paged: typeof all = [];
    let after: string | null = null;
    for (;;) {
      const ticks: any = (await client.request(JobTicksDocument, { id, first: 2, after })).job!.ticks;
      paged.push(...ticks.edges.map((e: any) => e.node));
      if (!ticks.pageInfo.hasNextPage) break;
      after = ticks.pageInfo.endCursor;
    }
    expect(paged).toEqual(all);
    const times = all.map((t) => Date.parse(t.fireTime));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    // A FIRED tick links to the execution it queued; the history holds the same executions.
    const fired = all.filter((t) => t.outcome === 'FIRED');
    expect(fired.length).toBeGreaterThan(0);
    for (const t of fired) expect(t.execution).not.toBeNull();
    const history: string[] = [];
    after = null;
    for (;;) {
      const page: any = (await client.request(JobHistoryDocument, { jobId: id, first: 2, after })).executions;
      history.push(...page.edges.map((e: any) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(new Set(history).size).toBe(history.length);
    for (const t of fired) expect(history).toContain(t.execution!.id);
  });

  it("points a bad cron field's diagnostic at its line and column", async () => {
    const spec = 'jobs:\n  - name: Bad\n    schedule: "61 0 * * *"\n    steps: [{run: "true"}]\n';
    const { validateJobSpec: result } = await client.request(ValidateJobSpecDocument, { spec });
    expect(result.valid).toBe(false);
    expect(result.diagnostics).toHaveLength(1);
    expect(result.diagnostics[0]).toMatchObject({ line: 3, column: 15, path: 'jobs[0].schedule', severity: 'error' });
    expect(result.diagnostics[0]!.message).toMatch(/minute/i);
  });

  it("keeps every operation of the app's pages within the query cost budget", async () => {
    const schema = buildSchema(await readFile(new URL('../schema.graphql', import.meta.url), 'utf8'));
    const limits = loadConfig({}).queryLimits;
    for (const doc of [JobScheduleDocument, JobNextFiresDocument, JobTicksDocument, JobHistoryDocument, ValidateJobSpecDocument, SubmitJobDocument] as DocumentNode[]) {
      expect(validate(schema, parse(print(doc)), [...specifiedRules, costRule(limits)]).map((e) => e.message)).toEqual([]);
    }
  });
});
