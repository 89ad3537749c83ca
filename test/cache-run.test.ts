import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCaches } from '../src/caches/cacheEntries.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { GIT_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { BUILD, cachedJob, kilnLines, makeRepo } from './helpers/cacheJobs.js';
import { outputOf, runJob, type LogLineView } from './helpers/runner.js';

describe('cache: restored before the steps, saved after success, per owner (issue 13, item 3)', () => {
  let repo: { root: string; url: string };
  let storeDir: string;
  let store: FilesystemStore;
  let k: TestKiln;
  let db: pg.Pool;
  let alice: string;
  let bob: string;
  const ownerOf = async (executionId: string): Promise<string> =>
    (await db.query<{ owner: string }>('select owner from executions where id = $1', [executionId])).rows[0]!.owner;

  beforeAll(async () => {
    await requireDocker();
    repo = await makeRepo();
    storeDir = await mkdtemp(path.join(tmpdir(), 'kiln-cache-store-'));
    store = new FilesystemStore(storeDir);
    k = await startTestKiln({ store, env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: repo.root } });
    db = new pg.Pool({ connectionString: k.databaseUrl, max: 2 });
    [alice, bob] = await Promise.all([k.token('alice'), k.token('bob')]);
  }, 60_000);

  afterAll(async () => {
    await db?.end();
    await k?.stop();
    if (repo) await rm(repo.root, { recursive: true, force: true });
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  });

  it('restores the exact key on the second run, and falls back to the prefix when the file changes', async () => {
    const first = await runJob(k, alice, cachedJob('Build', repo.url, 'main'));
    expect(first.status, first.error ?? '').toBe('SUCCEEDED');
    const key = /^cache: no entry for key "(deps-[0-9a-f]{64})" nor restore keys "deps-"$/.exec(kilnLines(first.logs)[0] ?? '')?.[1];
    expect(key, kilnLines(first.logs).join('\n')).toBeDefined();
    expect(outputOf(first.logs)).toContain('cold');
    expect(kilnLines(first.logs)[1]).toMatch(new RegExp(`^cache: saved key "${key}" \\(\\d+ bytes, tar.gz\\)$`));

    const second = await runJob(k, alice, cachedJob('Build', repo.url, 'main'));
    expect(second.status, second.error ?? '').toBe('SUCCEEDED');
    expect(kilnLines(second.logs)).toEqual([
      expect.stringMatching(new RegExp(`^cache: restored key "${key}" \\(exact key, \\d+ bytes\\)$`)),
      `cache: key "${key}" was restored exactly; not saved again`,
    ]);
    expect(outputOf(second.logs)).toContain('warm: from greet v1.0.0');

    // deps.lock changed: a new key, restored from the newest entry under "deps-".
    const bumped = await runJob(k, alice, cachedJob('Build', repo.url, 'bumped'));
    expect(bumped.status, bumped.error ?? '').toBe('SUCCEEDED');
    const lines = kilnLines(bumped.logs);
    expect(lines[0]).toMatch(new RegExp(`^cache: restored key "${key}" \\(restore key "deps-", \\d+ bytes\\)$`));
    expect(outputOf(bumped.logs)).toContain('warm: from greet v1.0.0');
    const newKey = /^cache: saved key "(deps-[0-9a-f]{64})"/.exec(lines[1] ?? '')?.[1];
    expect(newKey).toBeDefined();
    expect(newKey).not.toBe(key);
    const entries = await listCaches(db, await ownerOf(first.id));
    expect(entries.map((e) => e.key).sort()).toEqual([key, newKey].sort());
  });

  it("never restores another owner's cache, and keeps each owner's objects under its own prefix", async () => {
    const aliceRun = await runJob(k, alice, cachedJob('Shared', repo.url, 'main', { key: 'shared-{{ hashFiles "deps.lock" }}' }));
    expect(aliceRun.status).toBe('SUCCEEDED');
    // Bob's job has the same name, key template and checkout: the same key, in his scope.
    const bobRun = await runJob(k, bob, cachedJob('Shared', repo.url, 'main', { key: 'shared-{{ hashFiles "deps.lock" }}' }));
    expect(bobRun.status).toBe('SUCCEEDED');
    expect(kilnLines(bobRun.logs)[0]).toMatch(/^cache: no entry for key "shared-[0-9a-f]{64}" nor restore keys "deps-"$/);
    expect(outputOf(bobRun.logs)).toContain('cold');
    const [aliceOwner, bobOwner] = [await ownerOf(aliceRun.id), await ownerOf(bobRun.id)];
    const [aliceEntries, bobEntries] = [await listCaches(db, aliceOwner), await listCaches(db, bobOwner)];
    expect(bobEntries.map((e) => e.key)).toEqual([expect.stringMatching(/^shared-/)]);
    expect(aliceEntries.map((e) => e.key)).toContain(bobEntries[0]!.key);
    const prefixOf = (key: string): string => key.split('/').slice(0, 2).join('/');
    expect(new Set(aliceEntries.map((e) => prefixOf(e.objectKey))).size).toBe(1);
    expect(prefixOf(bobEntries[0]!.objectKey)).not.toBe(prefixOf(aliceEntries[0]!.objectKey));
  });

  it('saves nothing after a failed or timed-out run', async () => {
    const failed = await runJob(k, alice, cachedJob('Fails', repo.url, 'main', { key: 'fails-{{ job }}', steps: [...BUILD, 'exit 3'] }));
    expect(failed.status).toBe('FAILED');
    expect(failed.exitCode).toBe(3);
    const timedOut = await runJob(k, alice, cachedJob('Slow', repo.url, 'main', { key: 'slow-{{ job }}', steps: [...BUILD, 'sleep 30'], extra: ['timeout: 4s'] }));
    expect(timedOut.status).toBe('TIMED_OUT');
    for (const run of [failed, timedOut]) {
      expect(kilnLines(run.logs).filter((l) => l.startsWith('cache: saved'))).toEqual([]);
    }
    const keys = (await listCaches(db, await ownerOf(failed.id))).map((e) => e.key);
    expect(keys.filter((key) => key.startsWith('fails-') || key.startsWith('slow-'))).toEqual([]);
  });

  it('fails the run, before any step, when the key names a file the checkout does not have', async () => {
    const e = await runJob(k, alice, cachedJob('NoLock', repo.url, 'main', { key: 'x-{{ hashFiles "go.sum" }}' }));
    expect(e.status).toBe('FAILED');
    expect(e.error).toBe('cache key: hashFiles("go.sum") matches no regular file of /workspace (symlinks are not followed); check the checkout and the glob');
    expect(e.steps.every((s) => s.status === 'PENDING' || s.status === 'SKIPPED' || s.exitCode === null)).toBe(true);
  });

  it('never follows a symlink: it matches no glob, and a key over it alone fails the run', async () => {
    const keyOf = (e: { logs: LogLineView[] }): string | undefined => /key "(lock-[0-9a-f]{64})"/.exec(kilnLines(e.logs).join('\n'))?.[1];
    const plain = await runJob(k, alice, cachedJob('Plain', repo.url, 'main', { key: 'lock-{{ hashFiles "*.lock" }}' }));
    const linked = await runJob(k, alice, cachedJob('Linked', repo.url, 'linked', { key: 'lock-{{ hashFiles "*.lock" }}' }));
    expect([plain.status, linked.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    // host.lock (-> /etc/passwd) is not hashed: both checkouts have the same key.
    expect(keyOf(plain)).toBeDefined();
    expect(keyOf(linked)).toBe(keyOf(plain));
    const only = await runJob(k, alice, cachedJob('OnlyLink', repo.url, 'linked', { key: 'x-{{ hashFiles "host.lock" }}' }));
    expect(only.status).toBe('FAILED');
    expect(only.error).toBe('cache key: hashFiles("host.lock") matches no regular file of /workspace (symlinks are not followed); check the checkout and the glob');
  });
});
