import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileJobFile } from '../src/jobfile/compile.js';
import { logKeys } from '../src/logs/archive.js';
import { artifactKey } from '../src/runner/artifacts.js';
import type { ArtifactStore } from '../src/storage/ArtifactStore.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { S3Store } from '../src/storage/s3.js';
import { housekeepingTask } from '../src/tasks/housekeeping.js';
import { storeDeletionsTask } from '../src/tasks/store-deletions.js';
import { archivedNdjson } from './helpers/archive.js';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { jobYaml, outputOf, runJob, submitJob, waitForEnd } from './helpers/runner.js';
import { startS3rver, type S3rverHandle, s3StoreOn } from './helpers/s3.js';

/** A step that writes `bytes` of random data (incompressible: the tar.gz is about as big) to `file`. */
const random = (file: string, bytes: number) => `head -c ${bytes} /dev/urandom > ${file}`;

/** Every file under `dir` (relative paths), none when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** The key of the object holding an execution's archived log (a pack for a small one), once archived. */
async function logKeyOf(k: TestKiln, executionId: string): Promise<string | undefined> {
  const { rows } = await k.kiln.deps.pool.query<{ log_key: string | null }>(`select log_key from executions where id = $1`, [executionId]);
  return rows[0]?.log_key ?? undefined;
}

const systemLines = (logs: Array<{ stream: string; text: string }>) => logs.filter((l) => l.stream === 'SYSTEM').map((l) => l.text);

describe('artifact paths at submit', () => {
  it('reads big, ./big, ././big and .//big as one path, stored once, with a warning at each repeat', () => {
    const result = compileJobFile(jobYaml('Fill', ['true'], ['artifacts: [big, ./big, ././big, .//big, ./././big, .///big, bin/, ./bin]']));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.jobs[0]!.artifacts).toEqual(['big', 'bin/']);
    const repeats = result.warnings.filter((w) => /is the same path as/.test(w.message));
    expect(repeats.map((w) => w.path)).toEqual([1, 2, 3, 4, 5, 7].map((i) => `jobs[0].artifacts[${i}]`));
  });

  it('refuses a path that leaves the workspace once normalised, at its key', () => {
    const result = compileJobFile(jobYaml('Escape', ['true'], ['artifacts: [ok, a/../../etc/passwd, /etc/shadow]']));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.diagnostics.map((d) => [d.path, d.message])).toEqual([
      ['jobs[0].artifacts[1]', '"a/../../etc/passwd" leaves the workspace with ".."'],
      ['jobs[0].artifacts[2]', '"/etc/shadow" is absolute; artifact paths are relative to /workspace'],
    ]);
  });

  it('refuses a job listing more than 100 secrets, naming the limit', () => {
    const names = Array.from({ length: 101 }, (_, i) => `S${i}`).join(', ');
    const result = compileJobFile(jobYaml('ManySecrets', ['true'], [`secrets: [${names}]`]));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.diagnostics.map((d) => [d.path, d.message])).toEqual([['jobs[0].secrets', 'a job may list at most 100 secrets, found 101']]);
  });
});

describe('storage quotas (real Docker engine, Postgres, filesystem store)', () => {
  let k: TestKiln;
  let storeDir: string;
  let bob: string;
  let alice: string;

  beforeAll(async () => {
    await requireDocker();
    storeDir = await mkdtemp(path.join(tmpdir(), 'kiln-quota-store-'));
    k = await startTestKiln({
      store: new FilesystemStore(storeDir),
      env: {
        KILN_OWNER_STORAGE_QUOTA: String(100_000),
        KILN_MAX_EXECUTION_ARTIFACT_BYTES: String(45_000),
        KILN_WRITABLE_MAX_BYTES: '8m',
        KILN_MAX_SECRETS_PER_OWNER: '3',
      },
    });
    [bob, alice] = await Promise.all([k.token('bob'), k.token('alice')]);
  });

  afterAll(async () => {
    await k?.stop();
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  });

  it('stores big once when the job lists it as big, ./big, ././big and .//big', async () => {
    const e = await runJob(k, alice, jobYaml('FillOnce', [random('big', 20_000)], ['artifacts: [big, ./big, ././big, .//big]']));
    expect(e.status, e.error ?? '').toBe('SUCCEEDED');
    expect(e.artifacts.map((a) => a.path)).toEqual(['big']);
    expect(await filesUnder(path.join(storeDir, 'executions', e.id, 'artifacts'))).toEqual(['1-big.tar.gz']);
  });

  it('stops storing once an execution or its owner is over the limit, says which in the log, and leaves other owners alone', async () => {
    // 30 kB each: one fits an execution (45 kB), two do not; three fit the owner (100 kB), four do not.
    const two = jobYaml('TwoParts', [random('a', 30_000), random('b', 30_000)], ['artifacts: [a, b]']);
    const first = await runJob(k, bob, two);
    expect(first.status).toBe('FAILED');
    expect(first.artifacts.map((a) => a.path)).toEqual(['a']);
    expect(first.error).toMatch(/^artifact "b" does not fit: the artifacts of one execution may take 45000 bytes compressed \(KILN_MAX_EXECUTION_ARTIFACT_BYTES\)/);
    expect(systemLines(first.logs).some((l) => l.startsWith('error: artifact "b" does not fit') && l.includes('KILN_MAX_EXECUTION_ARTIFACT_BYTES'))).toBe(true);
    expect(await filesUnder(path.join(storeDir, 'executions', first.id, 'artifacts'))).toEqual(['1-a.tar.gz']);

    const second = await runJob(k, bob, two.replace('TwoParts', 'TwoMore'));
    expect(second.artifacts.map((a) => a.path)).toEqual(['a']);
    expect(second.error).toMatch(/^artifact "b" does not fit: the artifacts of one execution/);

    // Bob holds about 60 kB now: the next 30 kB fit, then nothing more does.
    const third = await runJob(k, bob, jobYaml('OneMore', [random('c', 30_000), random('d', 30_000)], ['artifacts: [c, d]']));
    expect(third.artifacts.map((a) => a.path)).toEqual(['c']);
    expect(third.status).toBe('FAILED');
    expect(third.error).toMatch(/^artifact "d" does not fit in the owner's storage quota of 100000 bytes \(KILN_OWNER_STORAGE_QUOTA, \d+ bytes used\)/);
    expect(systemLines(third.logs).some((l) => l.startsWith('error: artifact "d" does not fit in the owner\'s storage quota'))).toBe(true);

    const over = await runJob(k, bob, jobYaml('OverQuota', [random('e', 30_000)], ['artifacts: [e]']));
    expect(over.status).toBe('FAILED');
    expect(over.artifacts).toEqual([]);
    expect(over.error).toMatch(/KILN_OWNER_STORAGE_QUOTA/);
    expect(await filesUnder(path.join(storeDir, 'executions', over.id, 'artifacts'))).toEqual([]);
    const total = [first, second, third].flatMap((e) => e.artifacts).reduce((sum, a) => sum + a.size, 0);
    expect(total).toBeLessThanOrEqual(100_000);

    // The bystander's quota is her own.
    const hers = await runJob(k, alice, jobYaml('HerBuild', [random('report', 30_000)], ['artifacts: [report]']));
    expect(hers.status, hers.error ?? '').toBe('SUCCEEDED');
    expect(hers.artifacts.map((a) => a.path)).toEqual(['report']);
  });

  it('fails a step that writes past the writable-space limit with the reason, and the next build has its room', async () => {
    const e = await runJob(k, bob, jobYaml('FillDisk', ['dd if=/dev/zero of=/workspace/fill bs=1M count=32', 'echo never']));
    expect(e.status).toBe('FAILED');
    expect(e.steps.map((s) => s.status)).toEqual(['FAILED', 'SKIPPED']);
    expect(outputOf(e.logs, 'STDERR').some((l) => l.includes('No space left on device'))).toBe(true);
    expect(systemLines(e.logs)).toContain(
      'step "dd if=/dev/zero of=/workspace/fill bs=1M count=32" ran out of writable space: /workspace, /tmp, /root, /home, /go may hold 8m each ' +
        "(KILN_WRITABLE_MAX_BYTES), and their content counts against the container's memory limit",
    );
    // /tmp is capped the same way; a build within the limit runs as before.
    const tmp = await runJob(k, bob, jobYaml('FillTmp', ['dd if=/dev/zero of=/tmp/fill bs=1M count=32']));
    expect(tmp.status).toBe('FAILED');
    const fits = await runJob(k, alice, jobYaml('Fits', ['dd if=/dev/zero of=/workspace/ok bs=1M count=4 && ls -l /workspace/ok | wc -l']));
    expect(fits.status, fits.error ?? '').toBe('SUCCEEDED');
  });

  it('removes a deleted job\'s logs and artifacts from the store, and nothing of another job', async () => {
    const mine = await runJob(k, alice, jobYaml('Doomed', [random('out', 1000)], ['artifacts: [out]']));
    const kept = await runJob(k, alice, jobYaml('Kept', [random('out', 1000)], ['artifacts: [out]']));
    const packs: string[] = [];
    for (const e of [mine, kept]) {
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      // The archive is written after the run ends: wait for it, so the deletion has it to remove.
      // A small log is a range of a pack (docs/design.md#archives).
      packs.push(await waitFor(() => logKeyOf(k, e.id), 30_000, 'the log archive'));
    }
    const job = await k.gql('query($id: ID!) { execution(id: $id) { job { id } } }', { id: mine.id }, alice);
    const deleted = await k.gql('mutation($id: ID!) { deleteJob(id: $id) }', { id: job.data!.execution.job.id }, alice);
    expect(deleted.data?.deleteJob).toBe(true);
    await waitFor(async () => ((await filesUnder(path.join(storeDir, 'executions', mine.id))).length === 0 ? true : undefined), 30_000, 'the store objects to go');
    // Its pack is gone: rewritten without its log if another log shared it, removed otherwise.
    await waitFor(async () => ((await filesUnder(storeDir)).includes(packs[0]!) ? undefined : true), 30_000, 'its log pack to go');
    expect((await filesUnder(path.join(storeDir, 'executions', kept.id))).sort()).toEqual(['artifacts/1-out.tar.gz']);
    expect(await archivedNdjson(k.kiln.deps.pool, new FilesystemStore(storeDir), kept.id)).toContain('"stream":"SYSTEM"');
  });

  it('finishes a deletion recorded before a crash: the rows alone bring the store objects down, in two sweeps', async () => {
    // As if the process died right after deleteJob committed: the rows are there, the objects too.
    const store = new FilesystemStore(storeDir);
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids) {
      await store.put(`executions/${id}/log.txt`, 'log');
      await store.put(`executions/${id}/artifacts/1-out.tar.gz`, 'artifact');
    }
    const pool = new pg.Pool({ connectionString: k.databaseUrl, max: 2 });
    try {
      await pool.query(`insert into store_deletions (prefix) select 'executions/' || unnest($1::text[]) || '/'`, [ids]);
      const sweep = storeDeletionsTask(pool, store, () => {});
      await sweep(undefined as never, undefined as never);
      for (const id of ids) expect(await filesUnder(path.join(storeDir, 'executions', id))).toEqual([]);
      const afterFirst = await pool.query<{ sweeps: number; later: boolean }>(
        `select sweeps, due_at > now() + interval '5 minutes' as later from store_deletions where prefix like any($1)`,
        [ids.map((id) => `executions/${id}/`)],
      );
      expect(afterFirst.rows).toEqual([{ sweeps: 1, later: true }, { sweeps: 1, later: true }]);
      // A late upload of a cancelled run, then the second sweep.
      await store.put(`executions/${ids[0]}/artifacts/2-late.tar.gz`, 'late');
      await pool.query(`update store_deletions set due_at = now() where prefix like any($1)`, [ids.map((id) => `executions/${id}/`)]);
      await sweep(undefined as never, undefined as never);
      expect(await filesUnder(path.join(storeDir, 'executions', ids[0]!))).toEqual([]);
      const left = await pool.query(`select 1 from store_deletions where prefix like any($1)`, [ids.map((id) => `executions/${id}/`)]);
      expect(left.rowCount).toBe(0);
    } finally {
      await pool.end();
    }
  });

  it('refuses a secret past the owner\'s cap with a clear error, replaces existing ones, and leaves other owners alone', async () => {
    const set = (name: string, token: string) => k.gql('mutation($n: String!) { setSecret(name: $n, value: "v") { name } }', { n: name }, token);
    for (const name of ['S1', 'S2', 'S3']) expect((await set(name, bob)).errors).toBeUndefined();
    const refused = await set('S4', bob);
    expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(refused.errors?.[0]?.message).toBe('you already store 3 secrets, the most one owner may store (KILN_MAX_SECRETS_PER_OWNER = 3); delete one first');
    expect((await set('S1', bob)).errors).toBeUndefined();
    expect((await set('S4', alice)).errors).toBeUndefined();
    // Four new names at once: the cap holds under concurrency too.
    const results = await Promise.all(['A1', 'A2', 'A3', 'A4'].map((n) => set(n, alice)));
    expect(results.filter((r) => r.errors === undefined)).toHaveLength(2);
  });

  it('prunes ticks older than the retention in the housekeeping task, and keeps the rest', async () => {
    const { jobId } = await submitJob(k, alice, jobYaml('Ledger', ['true']));
    const pool = new pg.Pool({ connectionString: k.databaseUrl, max: 2 });
    try {
      const day = 86_400_000;
      const times = [40, 31, 29, 1].map((d) => new Date(Date.now() - d * day).toISOString());
      await pool.query(
        `insert into ticks (job_id, fire_time, outcome) select $1, t, 'MISSED' from unnest($2::timestamptz[]) as t`,
        [jobId, times],
      );
      const fire = { defaultImage: 'unused', graceMs: 5000, runAllMax: 1, maxTicks: 10, batchSize: 10 };
      await housekeepingTask(pool, fire, () => {}, 30 * day)(undefined as never, undefined as never);
      const { rows } = await pool.query<{ fire_time: Date }>('select fire_time from ticks where job_id = $1 order by fire_time', [jobId]);
      expect(rows.map((r) => r.fire_time.toISOString())).toEqual(times.slice(2));
    } finally {
      await pool.end();
    }
  });
});

describe('a deleted job on S3 (s3rver)', () => {
  let s3: S3rverHandle;
  let store: S3Store;
  let k: TestKiln;

  beforeAll(async () => {
    await requireDocker();
    s3 = await startS3rver();
    store = s3StoreOn(s3);
    k = await startTestKiln({ store });
  });

  afterAll(async () => {
    await k?.stop();
    store?.close();
    await s3?.stop();
  });

  // A small log is a range of a pack, whose key its row holds (docs/design.md#archives).
  const keysOf = async (id: string) => [(await logKeyOf(k, id)) ?? logKeys(id).ndjson, artifactKey(id, 0, 'out')];
  const present = async (s: ArtifactStore, keys: string[]) => (await Promise.all(keys.map((key) => s.exists(key)))).filter(Boolean).length;

  it('leaves no object of its executions in the bucket, and the other job\'s objects where they were', async () => {
    const token = await k.token('carol');
    const { jobId, executionId } = await submitJob(k, token, jobYaml('DoomedS3', [random('out', 1000)], ['artifacts: [out]']));
    const other = await runJob(k, token, jobYaml('KeptS3', [random('out', 1000)], ['artifacts: [out]']));
    expect((await waitForEnd(k, token, executionId)).status).toBe('SUCCEEDED');
    for (const id of [executionId, other.id]) await waitFor(async () => ((await present(store, await keysOf(id))) === 2 ? true : undefined), 30_000, 'the archive');
    const doomed = await keysOf(executionId);
    const deleted = await k.gql('mutation($id: ID!) { deleteJob(id: $id) }', { id: jobId }, token);
    expect(deleted.data?.deleteJob).toBe(true);
    await waitFor(async () => ((await present(store, doomed)) === 0 ? true : undefined), 30_000, 'the objects to go');
    expect(await present(store, await keysOf(other.id))).toBe(2);
  });
});
