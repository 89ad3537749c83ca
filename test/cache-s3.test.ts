import { rm } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Store } from '../src/storage/s3.js';
import { cacheObjectPrefix } from '../src/caches/cacheEntries.js';
import { GIT_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { cachedJob, kilnLines, makeRepo } from './helpers/cacheJobs.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { outputOf, runJob } from './helpers/runner.js';
import { s3StoreOn, startS3rver, type S3rverHandle } from './helpers/s3.js';

describe('cache: through an S3 store (issue 13, item 3)', () => {
  let repo: { root: string; url: string };
  let s3: S3rverHandle;
  let store: S3Store;
  let k: TestKiln;

  beforeAll(async () => {
    await requireDocker();
    repo = await makeRepo();
    s3 = await startS3rver();
    store = s3StoreOn(s3);
    k = await startTestKiln({ store, env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: repo.root } });
  }, 60_000);

  afterAll(async () => {
    await k?.stop();
    store?.close();
    await s3?.stop();
    if (repo) await rm(repo.root, { recursive: true, force: true });
  });

  it("uploads the cache as one tar.gz under the owner's prefix and restores it on the next run", async () => {
    const token = await k.token('erin');
    const first = await runJob(k, token, cachedJob('OnS3', repo.url, 'main'));
    expect(first.status, first.error ?? '').toBe('SUCCEEDED');
    const saved = s3.events.filter((e) => e.key.startsWith('caches/'));
    expect(saved).toHaveLength(1);
    expect(saved[0]!.key).toMatch(/^caches\/[0-9a-f]{32}\/[0-9a-f-]{36}\/cache\.tar\.gz$/);
    // The prefix is a hash of the owner Kiln knows the execution by.
    const db = new pg.Client({ connectionString: k.databaseUrl });
    await db.connect();
    const { rows } = await db.query<{ owner: string }>('select owner from executions where id = $1', [first.id]).finally(() => db.end());
    expect(saved[0]!.key.startsWith(cacheObjectPrefix(rows[0]!.owner))).toBe(true);

    const second = await runJob(k, token, cachedJob('OnS3', repo.url, 'main'));
    expect(second.status, second.error ?? '').toBe('SUCCEEDED');
    expect(kilnLines(second.logs)[0]).toMatch(/^cache: restored key "deps-[0-9a-f]{64}" \(exact key, \d+ bytes\)$/);
    expect(outputOf(second.logs)).toContain('warm: from greet v1.0.0');
  });
});
