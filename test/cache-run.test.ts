import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheObjectPrefix, listCaches } from '../src/caches/cacheEntries.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { GIT_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { jobYaml, outputOf, runJob, type LogLineView } from './helpers/runner.js';

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=Kiln Test', '-c', 'user.email=test@kiln.invalid', '-c', 'init.defaultBranch=main', ...args], {
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  }).trim();
}

/** A repository with `deps.lock` on main, a branch `bumped` where it changed, and `linked` with a symlink out. */
async function makeRepo(): Promise<{ root: string; url: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'kiln-cache-repos-'));
  await chmod(root, 0o755);
  const dir = path.join(root, 'repo');
  execFileSync('mkdir', [dir]);
  git(dir, 'init', '-q');
  await writeFile(path.join(dir, 'deps.lock'), 'greet v1.0.0\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'first');
  git(dir, 'checkout', '-q', '-b', 'bumped');
  await writeFile(path.join(dir, 'deps.lock'), 'greet v1.1.0\n');
  git(dir, 'commit', '-q', '-am', 'bump');
  // Same deps.lock as main, plus a symlink to a file outside the workspace that a glob matches.
  git(dir, 'checkout', '-q', 'main');
  git(dir, 'checkout', '-q', '-b', 'linked');
  await symlink('/etc/passwd', path.join(dir, 'host.lock'));
  git(dir, 'add', 'host.lock');
  git(dir, 'commit', '-q', '-m', 'a symlink out');
  git(dir, 'checkout', '-q', 'main');
  return { root, url: `file://${dir}` };
}

/** A step that builds "slowly" the first time and finds its output in the cache the next. */
const BUILD = [
  'if [ -f /root/.cache/demo/built ]; then echo "warm: $(cat /root/.cache/demo/built)"; else echo cold; mkdir -p /root/.cache/demo && echo "from $(cat deps.lock)" > /root/.cache/demo/built; fi',
  'mkdir -p out && echo kept > out/also',
];

function cachedJob(name: string, url: string, ref: string, opts: { key?: string; steps?: string[]; extra?: string[] } = {}): string {
  return jobYaml(name, opts.steps ?? BUILD, [
    `repository: { url: "${url}", ref: ${ref} }`,
    'cache:',
    `  key: ${opts.key ?? 'deps-{{ hashFiles "deps.lock" }}'}`,
    '  restore_keys: [deps-]',
    '  paths: [/root/.cache/demo, /workspace/out]',
    ...(opts.extra ?? []),
  ]);
}

const kilnLines = (logs: LogLineView[]): string[] => logs.filter((l) => l.stream === 'SYSTEM' && l.text.startsWith('cache: ')).map((l) => l.text);

describe('cache: restored before the steps, saved after success, per owner (issue 13, item 3)', () => {
  let repo: { root: string; url: string };
  let storeDir: string;
  let store: FilesystemStore;
  let k: TestKiln;
  let db: pg.Pool;
  let alice: string;
  let bob: string;
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
    [alice, bob, carol, dave] = await Promise.all([k.token('alice'), k.token('bob'), k.token('carol'), k.token('dave')]);
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
