import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveLogToStore } from '../src/logs/archive.js';
import { LOG_SEARCH_SCAN_LINES } from '../src/services/logSearch.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

/**
 * Execution.logSearch (docs/design.md#log-search): a case-insensitive search over the whole
 * stored log, on the server, in bounded windows; from Postgres or, once the lines are gone from
 * it, from the archive. Lines are written straight into Postgres on an API-only Kiln, as the
 * log pipeline would store them.
 */
const SEARCH = `query($id: ID!, $q: String!, $after: Int, $first: Int) {
  execution(id: $id) { lastSeq logSearch(query: $q, afterSeq: $after, first: $first) { matches { seq step } scannedThrough hasMore } }
}`;

let k: TestKiln;
let pool: pg.Pool;
let alice: string;
let n = 0;

/** A finished execution of alice's with `count` lines: `step 0 line i` (i = 1..count), every 1000th in red ANSI, and a Needle line at `needleAt`. */
async function executionWithLines(count: number, needleAt: number[]): Promise<string> {
  const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: `jobs:\n  - name: Search${++n}\n    steps:\n      - run: "true"\n      - run: "true"\n` }, alice);
  const id = res.data!.submitJob.jobs[0].lastExecution.id as string;
  await pool.query(
    `insert into log_chunks (execution_id, seq, stream, step, text, at)
     select $1, i, 'STDOUT', case when i <= $2 / 2 then 0 else 1 end,
            case when i = any($3::int[]) then 'the NeEdLe in line ' || i else 'plain line ' || i end, now()
       from generate_series(1, $2) as i`,
    [id, count, needleAt],
  );
  await pool.query(`update executions set status = 'SUCCEEDED', last_seq = $2, started_at = now(), finished_at = now() where id = $1`, [id, count]);
  return id;
}

async function search(id: string, q: string, after?: number, first?: number, token = alice) {
  return k.gql(SEARCH, { id, q, after, first }, token);
}

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  pool = new pg.Pool({ connectionString: k.databaseUrl, max: 4 });
  alice = await k.token('alice');
});
afterAll(async () => {
  await pool?.end();
  await k?.stop();
});

describe('searching a whole log on the server', () => {
  it('finds a line near the end of a 100,000-line log, whatever the case, with its step', async () => {
    const id = await executionWithLines(100_000, [99_990]);
    const res = await search(id, 'needle');
    expect(res.errors).toBeUndefined();
    expect(res.data!.execution).toEqual({ lastSeq: 100_000, logSearch: { matches: [{ seq: 99_990, step: 1 }], scannedThrough: 100_000, hasMore: false } });
    const upper = await search(id, 'NEEDLE IN LINE 9999');
    expect(upper.data!.execution.logSearch.matches).toEqual([{ seq: 99_990, step: 1 }]);
    expect((await search(id, 'absent text')).data!.execution.logSearch.matches).toEqual([]);
  });

  it('answers at most `first` matches and goes on from scannedThrough, missing and repeating none', async () => {
    const needles = Array.from({ length: 25 }, (_, i) => 7 + i * 37);
    const id = await executionWithLines(2000, needles);
    const found: number[] = [];
    let after = 0;
    for (let pages = 0; pages < 10; pages++) {
      const { logSearch } = (await search(id, 'needle', after, 10)).data!.execution;
      found.push(...logSearch.matches.map((m: { seq: number }) => m.seq));
      after = logSearch.scannedThrough;
      if (!logSearch.hasMore) break;
    }
    expect(found).toEqual(needles);
    expect(after).toBe(2000);
  });

  it('searches a window of at most LOG_SEARCH_SCAN_LINES lines per request', async () => {
    const total = LOG_SEARCH_SCAN_LINES + 10;
    const id = await executionWithLines(total, [LOG_SEARCH_SCAN_LINES + 5]);
    const first = (await search(id, 'needle')).data!.execution.logSearch;
    expect(first).toEqual({ matches: [], scannedThrough: LOG_SEARCH_SCAN_LINES, hasMore: true });
    const second = (await search(id, 'needle', first.scannedThrough)).data!.execution.logSearch;
    expect(second).toEqual({ matches: [{ seq: LOG_SEARCH_SCAN_LINES + 5, step: 1 }], scannedThrough: total, hasMore: false });
  });

  it('searches the archive once the lines are no longer in Postgres', async () => {
    const id = await executionWithLines(30_000, [12, 29_999]);
    const key = await archiveLogToStore(pool, k.kiln.deps.store, id);
    await pool.query(`update executions set log_key = $2 where id = $1`, [id, key]);
    await pool.query(`delete from log_chunks where execution_id = $1`, [id]);
    const all = (await search(id, 'Needle')).data!.execution.logSearch;
    expect(all).toEqual({ matches: [{ seq: 12, step: 0 }, { seq: 29_999, step: 1 }], scannedThrough: 30_000, hasMore: false });
    const later = (await search(id, 'needle', 12, 1)).data!.execution.logSearch;
    expect(later).toEqual({ matches: [{ seq: 29_999, step: 1 }], scannedThrough: 29_999, hasMore: true });
  });

  it("refuses bad arguments with BAD_USER_INPUT and shows another user's execution as null", async () => {
    const id = await executionWithLines(10, [3]);
    for (const [q, after, first] of [['', 0, 10], ['x'.repeat(257), 0, 10], ['x', -1, 10], ['x', 0, 0], ['x', 0, 1001]] as const) {
      const res = await search(id, q, after, first);
      expect(res.errors?.[0]?.extensions?.code, `${q.length} ${after} ${first}`).toBe('BAD_USER_INPUT');
    }
    const bob = await search(id, 'needle', 0, 10, await k.token('bob'));
    expect(bob.errors).toBeUndefined();
    expect(bob.data!.execution).toBeNull();
  });
});

describe('GET /api/v1/executions/:id/log.ndjson', () => {
  const ndjson = (id: string, token: string | null = alice) =>
    fetch(`${k.url}/api/v1/executions/${id}/log.ndjson`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const parse = (body: string) => body.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { seq: number; stream: string; step: number | null; text: string; at: string });

  it('streams every stored line with its fields, in seq order, from Postgres and then from the archive', async () => {
    const id = await executionWithLines(3000, [2999]);
    const res = await ndjson(id);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const lines = parse(await res.text());
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(lines[2998]).toMatchObject({ seq: 2999, stream: 'STDOUT', step: 1, text: 'the NeEdLe in line 2999' });
    expect(Date.parse(lines[0]!.at)).not.toBeNaN();

    const key = await archiveLogToStore(pool, k.kiln.deps.store, id);
    await pool.query(`update executions set log_key = $2 where id = $1`, [id, key]);
    await pool.query(`delete from log_chunks where execution_id = $1`, [id]);
    expect(parse(await (await ndjson(id)).text())).toEqual(lines);
  });

  it("answers 404 for another user's execution and 401 without a token", async () => {
    const id = await executionWithLines(5, []);
    expect((await ndjson(id, await k.token('bob'))).status).toBe(404);
    expect((await ndjson(id, null)).status).toBe(401);
  });
});
