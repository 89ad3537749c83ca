import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TickOutcome } from '../src/entities/enums.js';
import { compileJobFile } from '../src/jobfile/compile.js';
import { nextFireTimes, parseSchedule } from '../src/schedule/schedule.js';
import { isStale } from '../src/services/badges.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submit } from './helpers/ledger.js';

// Badges are counted by address like any tokenless caller: 30 a window, refilled in 30 s. The
// sleeping run is handed back at once on stop, not after the default 30 s grace.
const ENV = { KILN_EXECUTOR: 'noop', KILN_SHUTDOWN_GRACE_MS: '500', KILN_RATE_LIMIT_RPS: '1', KILN_RATE_LIMIT_BURST: '30' };
const OWNER = 'owner-name-never-shown';
const job = (name: string, schedule: string, run: string, badge = 'badge: true') =>
  `  - name: ${name}\n    schedule: "${schedule}"\n    ${badge}\n    steps: [{run: "${run}"}]\n`;

describe('GET /api/v1/badges/:job_id.svg', () => {
  let k: TestKiln;
  const ids: Record<string, string> = {};
  const badge = (id: string, headers: Record<string, string> = {}) => fetch(`${k.url}/api/v1/badges/${id}.svg`, { headers });
  const word = async (id: string) => {
    const res = await badge(id);
    expect(res.status).toBe(200);
    return /<text[^>]*>([^<]*)<\/text><\/g>/.exec(await res.text())![1];
  };
  /** Waits in the database (not on the rate-limited route) until the job's latest execution has `status`. */
  const latestIs = (id: string, status: string) =>
    waitFor(async () => {
      const { rows } = await k.kiln.deps.pool.query(`select status from executions where job_id = $1 order by created_at desc limit 1`, [id]);
      return rows[0]?.status === status ? true : undefined;
    }, 20_000, `${status} execution of ${id}`);

  beforeAll(async () => {
    k = await startTestKiln({ env: ENV });
    const file = [
      // One scheduled run each (run_once), so the latest execution holds still for the assertions.
      job('fails', '@every 1s', 'exit 1', 'badge: true\n    run_once: true'),
      job('passes', '@every 1s', 'true', 'badge: true\n    run_once: true'),
      job('runs', '@every 1s', 'sleep 60'),
      job('misses', '@every 1h', 'true'),
      job('hidden', '@every 1h', 'true', 'badge: false'),
    ];
    [ids.fails, ids.passes, ids.runs, ids.misses, ids.hidden] = await submit(k.gql, await k.token(OWNER), `jobs:\n${file.join('')}`);
  }, 30_000);
  afterAll(() => k?.stop());

  it('reads failing after a failed scheduled run, passing after a success, running while one runs', async () => {
    await Promise.all([latestIs(ids.fails!, 'FAILED'), latestIs(ids.passes!, 'SUCCEEDED'), latestIs(ids.runs!, 'RUNNING')]);
    expect(await word(ids.fails!)).toBe('failing');
    expect(await word(ids.passes!)).toBe('passing');
    expect(await word(ids.runs!)).toBe('running');
  }, 30_000);

  it('is an SVG with the name as label, an ETag and no-cache; no owner, no error text', async () => {
    const res = await badge(ids.fails!);
    expect(res.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    expect(res.headers.get('cache-control')).toBe('no-cache, max-age=0');
    const body = await res.text();
    expect(body).toMatch(/^<svg [^>]*aria-label="fails: failing"/);
    expect(body).not.toContain(OWNER);
    expect(body).not.toMatch(/exit|code|[0-9]{4}-[0-9]{2}/i);
    const etag = res.headers.get('etag')!;
    expect((await badge(ids.fails!, { 'if-none-match': etag })).status).toBe(304);
  });

  it('reads stale after a MISSED tick', async () => {
    expect(await word(ids.misses!)).toBe('no status');
    await k.kiln.deps.pool.query(`insert into ticks (job_id, fire_time, outcome, recorded_at) values ($1, now(), 'MISSED', now())`, [ids.misses]);
    expect(await word(ids.misses!)).toBe('stale');
  });

  it('answers one identical 404 for a job without badge: true, an unknown id and a malformed one', async () => {
    const answers = await Promise.all(
      [ids.hidden!, '00000000-0000-4000-8000-000000000000', 'not-a-uuid', `${ids.fails}%00`].map(async (id) => {
        const res = await badge(id);
        return `${res.status} ${res.headers.get('content-type')} ${await res.text()}`;
      }),
    );
    expect(answers[0]).toMatch(/^404 /);
    expect(new Set(answers).size).toBe(1);
  });

  it('is rate limited by address like other tokenless requests', async () => {
    const statuses = await Promise.all(Array.from({ length: 40 }, () => badge(ids.passes!).then((r) => r.status)));
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(10);
  });
});

describe('badge: in the job file and the two-period rule', () => {
  it('accepts true and false; anything else is an error at its line and column', () => {
    const file = (value: string) => `jobs:\n  - name: a\n    badge: ${value}\n    steps: [{run: "true"}]\n`;
    const on = compileJobFile(file('true'));
    expect(on.ok && on.jobs[0]!.badge).toBe(true);
    const off = compileJobFile(file('false'));
    expect(off.ok && off.jobs[0]!.badge).toBeUndefined();
    const bad = compileJobFile(file('"yes"'));
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.diagnostics[0]).toMatchObject({ line: 3, column: 12, path: 'jobs[0].badge' });
  });

  it('is stale once the last fire is older than two periods; never for a MISSED-free recent ledger', async () => {
    const hourly = parseSchedule('@every 1h');
    if (!hourly.ok) throw new Error(hourly.error);
    const anchor = new Date('2026-01-01T00:00:00Z');
    const second = async (after: Date) => nextFireTimes(hourly.value, { after, anchor, count: 2 })[1]!;
    const fired = { fireTime: new Date('2026-01-01T05:00:00Z'), outcome: TickOutcome.FIRED };
    expect(await isStale(fired, anchor, new Date('2026-01-01T06:59:00Z'), second)).toBe(false);
    expect(await isStale(fired, anchor, new Date('2026-01-01T07:01:00Z'), second)).toBe(true);
    expect(await isStale({ ...fired, outcome: TickOutcome.MISSED }, anchor, new Date('2026-01-01T05:00:01Z'), second)).toBe(true);
    // No tick yet: counted from the schedule's anchor.
    expect(await isStale(null, anchor, new Date('2026-01-01T01:30:00Z'), second)).toBe(false);
    expect(await isStale(null, anchor, new Date('2026-01-01T02:30:00Z'), second)).toBe(true);
  });
});
