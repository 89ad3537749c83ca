import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheObjectPrefix, listCaches } from '../src/caches/cacheEntries.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { GIT_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { kilnLines, makeRepo } from './helpers/cacheJobs.js';
import { jobYaml, runJob } from './helpers/runner.js';

describe("cache: the owner's size cap and storage quota (issue 13, item 3)", () => {
  let repo: { root: string; url: string };
  let storeDir: string;
  let store: FilesystemStore;
  let k: TestKiln;
  let db: pg.Pool;
  let carol: string;
  let dave: string;
  const ownerOf = async (executionId: string): Promise<string> =>
    (await db.query<{ owner: string }>('select owner from executions where id = $1', [executionId])).rows[0]!.owner;

  beforeAll(async () => {
    await requireDocker();
    repo = await makeRepo();
    storeDir = await mkdtemp(path.join(tmpdir(), 'kiln-cache-store-'));
    store = new FilesystemStore(storeDir);
    // 60 000 bytes of caches per owner: Carol's three caches of 25 000 random bytes cannot all stay.
    // 100 000 bytes of storage: Dave's 80 000 bytes of artifacts leave his caches 20 000.
    k = await startTestKiln({
      store,
      env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: repo.root, KILN_CACHE_MAX_BYTES: '60000', KILN_OWNER_STORAGE_QUOTA: '100000' },
    });
    db = new pg.Pool({ connectionString: k.databaseUrl, max: 2 });
    [carol, dave] = await Promise.all([k.token('carol'), k.token('dave')]);
  }, 60_000);

  afterAll(async () => {
    await db?.end();
    await k?.stop();
    if (repo) await rm(repo.root, { recursive: true, force: true });
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  });

  it("evicts the owner's least recently used caches past KILN_CACHE_MAX_BYTES, and their objects", async () => {
    const big = ['mkdir -p /root/.cache && head -c 25000 /dev/urandom > /root/.cache/blob'];
    const job = (name: string) =>
      jobYaml(name, big, [`repository: { url: "${repo.url}", ref: main }`, 'cache:', '  key: blob-{{ job }}', '  paths: [/root/.cache]']);
    const run = async (name: string) => {
      const e = await runJob(k, carol, job(name));
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      return e;
    };
    const a = await run('BlobA');
    const b = await run('BlobB');
    // A is used again (an exact hit): B is now the least recently used.
    expect(kilnLines((await run('BlobA')).logs)[0]).toMatch(/^cache: restored key "blob-[0-9a-f-]+" \(exact key, \d+ bytes\)$/);
    const c = await run('BlobC');
    expect(kilnLines(c.logs).at(-1)).toMatch(/^cache: saved key "blob-[0-9a-f-]+" \(\d+ bytes, tar.gz\); evicted 1 least recently used \(KILN_CACHE_MAX_BYTES\)$/);
    const savedKey = (e: typeof a): string => /saved key "([^"]+)"/.exec(kilnLines(e.logs).at(-1)!)![1]!;
    const owner = await ownerOf(a.id);
    const entries = await listCaches(db, owner);
    expect(entries.map((e) => e.key)).toEqual([savedKey(c), savedKey(a)]);
    expect(entries.reduce((sum, e) => sum + e.size, 0)).toBeLessThanOrEqual(60_000);
    expect(savedKey(b)).not.toBe(savedKey(a));
    // B's object leaves the store too (the store-deletions task): Carol's folder holds exactly the two kept.
    const carolDir = path.join(storeDir, cacheObjectPrefix(owner));
    const objects = await waitFor(
      async () => {
        const found = execFileSync('find', [carolDir, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
        return found.length === 2 ? found : undefined;
      },
      20_000,
      "the evicted cache's object to be deleted",
    );
    expect(objects.map((f) => path.relative(storeDir, f)).sort()).toEqual(entries.map((e) => e.objectKey).sort());
  });

  it("gives caches only what the owner's artifacts leave of the storage quota, and the build still succeeds", async () => {
    const e = await runJob(
      k,
      dave,
      jobYaml('Heavy', ['head -c 80000 /dev/urandom > big.bin', 'mkdir -p /root/.cache && head -c 25000 /dev/urandom > /root/.cache/blob'], [
        `repository: { url: "${repo.url}", ref: main }`,
        'artifacts: [big.bin]',
        'cache:',
        '  key: heavy-{{ job }}',
        '  paths: [/root/.cache]',
      ]),
    );
    expect(e.status, e.error ?? '').toBe('SUCCEEDED');
    expect(e.artifacts.map((a) => a.path)).toEqual(['big.bin']);
    const room = 100_000 - e.artifacts[0]!.size;
    expect(kilnLines(e.logs).at(-1)).toBe(
      `cache: saving key "heavy-${/heavy-([0-9a-f-]+)/.exec(kilnLines(e.logs).join('\n'))![1]}" failed (the cache is larger than ${room} bytes compressed, ` +
        "the room the owner's caches have (KILN_CACHE_MAX_BYTES, less what artifacts take of KILN_OWNER_STORAGE_QUOTA)); the run's outcome stands",
    );
    const owner = await ownerOf(e.id);
    expect(await listCaches(db, owner)).toEqual([]);
    // The cut-off upload left nothing behind in the store.
    const daveDir = path.join(storeDir, cacheObjectPrefix(owner));
    expect(execFileSync('find', [storeDir, '-path', `${daveDir}*`, '-type', 'f'], { encoding: 'utf8' }).trim()).toBe('');
  });
});
