import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKilnCli } from './helpers/cliProcess.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submit } from './helpers/ledger.js';

interface ApiTick {
  fireTime: string;
  outcome: string;
  catchUp: boolean;
  execution: { id: string; number: number; status: string } | null;
}

let k: TestKiln;
let env: Record<string, string>;
let token: string;
let dir: string;

beforeAll(async () => {
  // The noop executor: these tests are about the schedule and the ledger, not containers.
  k = await startTestKiln({ env: { KILN_EXECUTOR: 'noop' } });
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-cli-jobs-'));
  token = await k.token('pat');
  env = { KILN_URL: k.url, KILN_TOKEN: token, KILN_CREDENTIALS_FILE: path.join(dir, 'no-login.json') };
});
afterAll(async () => {
  await k?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function jobState(id: string): Promise<{ paused: boolean; nextRunAt: string | null } | null> {
  const res = await k.gql<{ job: { paused: boolean; nextRunAt: string | null } | null }>('query($id: ID!) { job(id: $id) { paused nextRunAt } }', { id }, token);
  return res.data!.job;
}

/** The whole ledger through the API, newest first, as `kiln ticks` pages it. */
async function apiTicks(id: string): Promise<ApiTick[]> {
  const all: ApiTick[] = [];
  for (let after: string | null = null; ; ) {
    const res: { data?: { job: { ticks: { edges: Array<{ node: ApiTick }>; pageInfo: { hasNextPage: boolean; endCursor: string } } } } } = await k.gql(
      'query($id: ID!, $after: String) { job(id: $id) { ticks(first: 100, after: $after) { edges { node { fireTime outcome catchUp execution { id number status } } } pageInfo { hasNextPage endCursor } } } }',
      { id, after },
      token,
    );
    const page = res.data!.job.ticks;
    all.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage) return all;
    after = page.pageInfo.endCursor;
  }
}

describe('kiln pause, resume, ticks and delete', () => {
  it('do what the API mutations do, and ticks shows the ledger the API has, page by page', async () => {
    const [id] = await submit(k.gql, token, 'jobs:\n  - name: every-second\n    schedule: "* * * * * *"\n    steps: [{run: "true"}]\n');
    await waitFor(async () => ((await apiTicks(id!)).filter((t) => t.outcome === 'FIRED').length >= 2 ? true : undefined), 20_000, 'two FIRED ticks');

    const paused = await runKilnCli(['pause', 'every-second'], env);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toBe(`every-second paused (${id})\n`);
    expect(await jobState(id!)).toEqual({ paused: true, nextRunAt: null });
    const pausedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3500));

    const resumed = await runKilnCli(['resume', id!, '--json'], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    const job = JSON.parse(resumed.stdout) as { id: string; paused: boolean; nextRunAt: string | null };
    expect(job).toMatchObject({ id, paused: false });
    expect(await jobState(id!)).toMatchObject({ paused: false, nextRunAt: expect.any(String) });
    const resumedAt = Date.now();
    await waitFor(
      async () => ((await apiTicks(id!)).some((t) => t.outcome === 'FIRED' && t.execution?.status === 'SUCCEEDED' && Date.parse(t.fireTime) > resumedAt - 1000) ? true : undefined),
      20_000,
      'a run fired after the resume',
    );
    // Paused again, the scheduler keeps adding PAUSED ticks each second: each comparison below
    // takes the API's ledger after the CLI's answer, up to the newest fire time the CLI saw.
    expect((await runKilnCli(['pause', id!], env)).code).toBe(0);
    // ... and once every run it fired has finished, no FIRED row changes between two reads.
    await waitFor(async () => ((await apiTicks(id!)).every((t) => t.execution === null || t.execution.status === 'SUCCEEDED') ? true : undefined), 20_000, 'the fired runs to finish');
    const upTo = (ledger: ApiTick[], newest: string) => ledger.filter((t) => t.fireTime <= newest);

    const all = await runKilnCli(['ticks', 'every-second', '--limit', '100', '--json'], env);
    expect(all.code, all.stderr).toBe(0);
    const shown = JSON.parse(all.stdout) as { job: { id: string }; ticks: ApiTick[]; nextCursor: string | null };
    expect(shown.job.id).toBe(id);
    expect(shown.nextCursor).toBeNull();
    const ledger = upTo(await apiTicks(id!), shown.ticks[0]!.fireTime);
    expect(shown.ticks).toEqual(ledger);
    const pausedTicks = ledger.filter((t) => t.outcome === 'PAUSED' && Date.parse(t.fireTime) < resumedAt);
    expect(pausedTicks.length, JSON.stringify(ledger)).toBeGreaterThanOrEqual(2);
    expect(pausedTicks.every((t) => Date.parse(t.fireTime) >= pausedAt - 1500)).toBe(true);
    expect(ledger.some((t) => t.outcome === 'FIRED' && Date.parse(t.fireTime) > resumedAt - 1000)).toBe(true);

    // Pages of 3, followed by the printed cursor, give the same ledger in the same order.
    const first = await runKilnCli(['ticks', 'every-second', '--limit', '3'], env);
    expect(first.code, first.stderr).toBe(0);
    const rows = first.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^FIRE TIME\s+OUTCOME\s+EXECUTION$/);
    const cursor = /--after (\S+)/.exec(first.stderr)?.[1];
    expect(cursor, first.stderr).toBeDefined();
    const second = await runKilnCli(['ticks', 'every-second', '--limit', '3', '--after', cursor!, '--json'], env);
    const paged = upTo(await apiTicks(id!), rows[1]!.split(/\s+/)[0]!);
    expect(rows.slice(1).map((r) => r.split(/\s+/).slice(0, 2))).toEqual(paged.slice(0, 3).map((t) => [t.fireTime, t.outcome]));
    expect((JSON.parse(second.stdout) as { ticks: ApiTick[] }).ticks).toEqual(paged.slice(3, 6));
    // A FIRED row names its execution.
    const fired = ledger.findLast((t) => t.outcome === 'FIRED')!;
    expect((await runKilnCli(['ticks', id!, '--limit', '100'], env)).stdout).toMatch(new RegExp(`^${fired.fireTime}\\s+FIRED\\s+#${fired.execution!.number} ${fired.execution!.status} ${fired.execution!.id}$`, 'm'));

    const deleted = await runKilnCli(['delete', 'every-second'], env);
    expect(deleted).toMatchObject({ code: 0, stdout: `every-second deleted (${id})\n` });
    expect(await jobState(id!)).toBeNull();
    const gone = await runKilnCli(['ticks', 'every-second'], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/no job "every-second" \[NOT_FOUND\]/);
  });

  it('cannot touch another user\'s job, and explains bad input', async () => {
    const [theirs] = await submit(k.gql, await k.token('quinn'), 'jobs:\n  - name: Theirs\n    schedule: "0 0 * * * *"\n    steps: [{run: "true"}]\n');
    const commands = ['pause', 'resume', 'delete', 'ticks'];
    const refused = await Promise.all(commands.map((command) => runKilnCli([command, theirs!], env)));
    for (const [i, r] of refused.entries()) {
      expect(r.code, `${commands[i]}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/NOT_FOUND/);
    }
    expect(await k.gql('query($id: ID!) { job(id: $id) { paused } }', { id: theirs }, await k.token('quinn'))).toMatchObject({ data: { job: { paused: false } } });
    const [noJob, badLimit] = await Promise.all([runKilnCli(['pause'], env), runKilnCli(['ticks', theirs!, '--limit', '500'], env)]);
    expect(noJob.code).toBe(2);
    expect(noJob.stderr).toMatch(/name the job/);
    expect(badLimit.code).toBe(2);
    expect(badLimit.stderr).toMatch(/--limit takes 1 to 100/);
  });
});

describe('kiln preview', () => {
  it('prints the next fire times in the zone, with their UTC offsets across a daylight-saving change', async () => {
    // Noon every day of March: each year's change to summer time falls in it (last Sunday).
    const r = await runKilnCli(['preview', '0 0 12 * 3 *', '--tz', 'Europe/Berlin', '--count', '31'], env);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...rows] = r.stdout.trim().split('\n');
    expect(header).toMatch(/^TIME \(Europe\/Berlin\)\s+UTC OFFSET\s+UTC$/);
    expect(rows).toHaveLength(31);
    const api = await k.gql<{ schedulePreview: string[] }>('{ schedulePreview(schedule: "0 0 12 * 3 *", timezone: "Europe/Berlin", count: 31) }', {}, token);
    const parsed = rows.map((row) => /^(\d{4}-\d\d-\d\d) 12:00:00\s+([+-]\d\d:\d\d)(?: \(was [+-]\d\d:\d\d\))?\s+(\S+)$/.exec(row));
    expect(parsed.every((m) => m !== null), r.stdout).toBe(true);
    expect(parsed.map((m) => m![3])).toEqual(api.data!.schedulePreview);
    for (const m of parsed) {
      // The wall clock is the UTC instant moved by the offset printed beside it.
      const [, day, offset, utc] = m!;
      const sign = offset!.startsWith('-') ? -1 : 1;
      const ms = sign * (Number(offset!.slice(1, 3)) * 60 + Number(offset!.slice(4, 6))) * 60_000;
      expect(new Date(Date.parse(utc!) + ms).toISOString().slice(0, 19)).toBe(`${day}T12:00:00`);
    }
    const offsets = parsed.map((m) => m![2]);
    expect(new Set(offsets)).toEqual(new Set(['+01:00', '+02:00']));
    const change = offsets.indexOf('+02:00');
    expect(rows[change]).toMatch(/\+02:00 \(was \+01:00\)/);

    const json = await runKilnCli(['preview', '*/15 * * * * *', '--count', '2', '--json'], env);
    const body = JSON.parse(json.stdout) as { timezone: string; fires: Array<{ at: string; local: string; utcOffset: string }> };
    expect(body.timezone).toBe('UTC');
    expect(body.fires).toHaveLength(2);
    expect(body.fires[0]!.utcOffset).toBe('+00:00');
  });

  it('reports a bad schedule or zone in the server\'s words', async () => {
    const [zone, cron, unquoted] = await Promise.all([
      runKilnCli(['preview', '0 0 12 * * *', '--tz', 'Mars/Olympus'], env),
      runKilnCli(['preview', '0 0 25 * * *'], env),
      runKilnCli(['preview', '0', '0', '12', '*', '*', '*'], env),
    ]);
    expect(zone.code).toBe(1);
    expect(zone.stderr).toMatch(/Mars\/Olympus.*\[BAD_USER_INPUT\]/);
    expect(cron.code).toBe(1);
    expect(cron.stderr).toMatch(/\[BAD_USER_INPUT\]/);
    expect(unquoted.code).toBe(2);
    expect(unquoted.stderr).toMatch(/quote the schedule as one argument/);
  });
});
