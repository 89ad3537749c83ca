import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logKeys, parseArchivedLog, renderLine } from '../src/logs/archive.js';
import { S3Store } from '../src/storage/s3.js';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { getExecution, jobYaml, logsOf, outputOf, runJob, submitJob, waitForEnd } from './helpers/runner.js';
import { startS3rver, type S3rverHandle } from './helpers/s3.js';

const LINES_50MB = 500_000;
/** Each line is 100 bytes with its newline: 8 digits, a space, 90 x's. */
const PAD = 'x'.repeat(90);
const AWK_50MB = `awk 'BEGIN { p = sprintf("%90s", ""); gsub(/ /, "x", p); for (i = 1; i <= ${LINES_50MB}; i++) printf "%08d %s\\n", i, p }'`;

async function withDb<T>(url: string, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}

describe('logs archived to an S3-compatible store (s3rver)', () => {
  let s3: S3rverHandle;
  let store: S3Store;
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    await requireDocker();
    s3 = await startS3rver();
    store = new S3Store({ bucket: s3.bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials, connectionTimeoutMs: 1000 });
    k = await startTestKiln({ store });
    token = await k.token('archivist');
  });

  afterAll(async () => {
    await k?.stop();
    store?.close();
    await s3?.stop();
  });

  it('ends the execution with its status while the store is down, then archives every line once it is back', async () => {
    const { executionId } = await submitJob(k, token, jobYaml('DuringOutage', ['seq 1 20000', 'sleep 2']));
    await waitFor(async () => ((await getExecution(k, token, executionId)).steps[1]?.status === 'RUNNING' ? true : undefined), 30_000, 'the second step to start');
    await s3.pause();
    try {
      const ended = await waitForEnd(k, token, executionId, 30_000);
      expect(ended.status).toBe('SUCCEEDED');
      expect(ended.logUrl).toBeNull();

      // The archive task fails and is scheduled again; the lines wait in Postgres, all of them.
      const failed = await waitFor(
        () =>
          withDb(k.databaseUrl, async (db) => {
            const { rows } = await db.query(
              `select archive_failures as failures, archive_due_at as run_at from executions where id = $1`,
              [executionId],
            );
            return rows[0]?.failures >= 1 ? rows[0] : undefined;
          }),
        30_000,
        'the archive to fail while the store is down',
      );
      expect(new Date(failed.run_at).getTime()).toBeGreaterThan(Date.now() - 1000); // retried later, with backoff
      const stored = await withDb(k.databaseUrl, async (db) =>
        (await db.query(`select count(*)::int as n, max(seq) as max, (select last_seq from executions where id = $1) as last from log_chunks where execution_id = $1`, [executionId])).rows[0],
      );
      expect(stored.n).toBe(stored.max);
      expect(stored.n).toBe(stored.last);
    } finally {
      await s3.resume();
    }

    const archived = await waitFor(async () => {
      const e = await getExecution(k, token, executionId);
      return e.logUrl ? e : undefined;
    }, 90_000, 'the log to be archived once the store is back');
    const lines = parseArchivedLog((await store.get(logKeys(executionId).ndjson)).toString('utf8'));
    const graphql = await logsOf(k, token, executionId);
    expect(lines.map((l) => l.seq)).toEqual(graphql.map((_, i) => i + 1));
    expect(lines.map((l) => [l.seq, l.stream, l.step, l.text])).toEqual(graphql.map((l) => [l.seq, l.stream, l.step, l.text]));
    expect(outputOf(graphql)).toEqual(Array.from({ length: 20_000 }, (_, i) => String(i + 1)));
    // The presigned URL serves the plain-text form.
    const text = await (await fetch(archived.logUrl!)).text();
    expect(text.split('\n').filter((l) => l !== '' && !l.startsWith('[kiln] '))).toEqual(outputOf(graphql));
  });

  it('archives a 50 MB log by multipart upload, and it reads back byte for byte', { timeout: 300_000 }, async () => {
    const { executionId } = await submitJob(k, token, jobYaml('BigLog', [AWK_50MB]));
    const e = await waitForEnd(k, token, executionId, 240_000);
    expect(e.status, e.error ?? '').toBe('SUCCEEDED');
    await waitFor(async () => ((await getExecution(k, token, executionId)).logUrl ? true : undefined), 240_000, 'the big log to be archived');

    // s3rver reports a completed multipart upload as ObjectCreated:Post (a single PUT is :Put).
    const key = logKeys(executionId).text;
    expect(s3.events.filter((ev) => ev.key === key).map((ev) => ev.eventName)).toEqual(['ObjectCreated:Post']);

    // The archived text is exactly the stored lines, rendered...
    const expected = createHash('sha256');
    const build = createHash('sha256');
    let buildLines = 0;
    await withDb(k.databaseUrl, async (db) => {
      let after = 0;
      for (;;) {
        const { rows } = await db.query(`select seq, stream, text from log_chunks where execution_id = $1 and seq > $2 order by seq limit 20000`, [executionId, after]);
        for (const r of rows) expected.update(renderLine(r) + '\n');
        if (rows.length < 20_000) break;
        after = rows.at(-1).seq;
      }
    });
    const archived = createHash('sha256');
    let size = 0;
    let rest = '';
    for await (const chunk of await store.getStream(key)) {
      archived.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      const text = rest + (chunk as Buffer).toString('utf8');
      const parts = text.split('\n');
      rest = parts.pop()!;
      for (const line of parts) {
        if (line.startsWith('[kiln] ')) continue;
        buildLines++;
        build.update(line + '\n');
      }
    }
    expect(archived.digest('hex')).toBe(expected.digest('hex'));
    // ...and the build's part is exactly what the step printed: 50 MB, every line in order.
    const printed = createHash('sha256');
    for (let i = 1; i <= LINES_50MB; i++) printed.update(`${String(i).padStart(8, '0')} ${PAD}\n`);
    expect(buildLines).toBe(LINES_50MB);
    expect(build.digest('hex')).toBe(printed.digest('hex'));
    expect(size).toBeGreaterThan(50_000_000);
  });
});

describe('a log over the size limit (KILN_MAX_LOG_BYTES)', () => {
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    await requireDocker();
    k = await startTestKiln({ env: { KILN_MAX_LOG_BYTES: '100000' } });
    token = await k.token('verbose');
  });

  afterAll(async () => {
    await k?.stop();
  });

  it('is cut at the limit with a SYSTEM line saying so, and the build runs on to its end', async () => {
    const e = await runJob(k, token, jobYaml('Chatty', ['seq 1 100000', 'echo after the flood; exit 3']));
    expect(e.status).toBe('FAILED');
    expect(e.exitCode).toBe(3); // the second step ran: the build was not stopped
    const out = outputOf(e.logs);
    const bytes = out.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    expect(bytes).toBeLessThanOrEqual(100_000 + 1);
    expect(bytes).toBeGreaterThan(99_000);
    expect(out.slice(0, 5)).toEqual(['1', '2', '3', '4', '5']);
    expect(out).not.toContain('after the flood');
    const notice = e.logs.filter((l) => l.stream === 'SYSTEM' && l.text.startsWith('output truncated'));
    expect(notice).toHaveLength(1);
    expect(notice[0]!.text).toContain('100000 bytes (KILN_MAX_LOG_BYTES)');
    expect(e.logs.map((l) => l.seq)).toEqual(e.logs.map((_, i) => i + 1));
  });

  it('keeps the worker memory flat while a step prints 300 MB past the limit', { timeout: 180_000 }, async () => {
    let peak = 0;
    const baseline = process.memoryUsage().rss;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - baseline)), 20);
    try {
      const e = await runJob(k, token, jobYaml('Flood', ['yes kiln-flood-line | head -c 300000000']), 120_000);
      expect(e.status).toBe('SUCCEEDED');
    } finally {
      clearInterval(sampler);
    }
    expect(peak).toBeLessThan(150 * 1024 * 1024);
  });
});
