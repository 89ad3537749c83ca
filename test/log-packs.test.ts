import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordArchives } from '../src/executions/archive.js';
import { sqlOfPg } from '../src/util/sql.js';
import { buildPack } from '../src/logs/logPacks.js';
import { NoopBackend } from '../src/runner/noop.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { archivedNdjson } from './helpers/archive.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';

/**
 * Log packs (docs/design.md#archives): small logs are archived as byte ranges of one object per
 * archive round; a deleted job's logs leave their pack, and the other logs in it stay readable.
 */
describe('small logs archived in packs', () => {
  let k: TestKiln;
  let store: FilesystemStore;
  const storeDir = () => path.join(k.dataDir, 'artifacts');

  beforeAll(async () => {
    k = await startTestKiln({ backend: new NoopBackend() });
    store = k.kiln.deps.store as FilesystemStore;
  });
  afterAll(async () => {
    await k?.stop();
  });

  /** Runs a one-off job whose step name carries `marker`; resolves with its ids once its log is archived. */
  async function runArchived(token: string, name: string, marker: string): Promise<{ jobId: string; executionId: string }> {
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id lastExecution { id } } } }`, {
      s: `jobs:\n  - name: ${name}\n    steps: [{run: "true ${marker}"}]\n`,
    }, token);
    expect(res.errors).toBeUndefined();
    const job = res.data!.submitJob.jobs[0];
    await waitFor(async () => ((await logKey(job.lastExecution.id)) === null ? undefined : true), 30_000, 'the log to be archived');
    return { jobId: job.id, executionId: job.lastExecution.id };
  }

  async function logKey(executionId: string): Promise<string | null> {
    const { rows } = await k.kiln.deps.pool.query<{ log_key: string | null }>(`select log_key from executions where id = $1`, [executionId]);
    return rows[0]?.log_key ?? null;
  }

  /** The store's files (relative paths) whose bytes contain `text`. */
  async function filesContaining(text: string): Promise<string[]> {
    const entries = await readdir(storeDir(), { recursive: true, withFileTypes: true });
    const found: string[] = [];
    for (const e of entries.filter((x) => x.isFile())) {
      const full = path.join(e.parentPath, e.name);
      if ((await readFile(full)).includes(text)) found.push(path.relative(storeDir(), full));
    }
    return found;
  }

  it('serves each log of a shared pack, and rewrites the pack without a deleted job\'s log', async () => {
    const token = await k.token('packer');
    const [doomedMarker, keptMarker] = [`doomed-${randomUUID()}`, `kept-${randomUUID()}`];
    const doomed = await runArchived(token, 'Doomed', doomedMarker);
    const kept = await runArchived(token, 'Kept', keptMarker);
    const pool = k.kiln.deps.pool;

    // Both logs in one pack, as one archive round makes it, whatever rounds archived them first.
    const before = { doomed: await archivedNdjson(pool, store, doomed.executionId), kept: await archivedNdjson(pool, store, kept.executionId) };
    expect(before.doomed).toContain(doomedMarker);
    const firstPacks = new Set([await logKey(doomed.executionId), await logKey(kept.executionId)]);
    const pack = buildPack([
      { id: doomed.executionId, bytes: Buffer.from(before.doomed) },
      { id: kept.executionId, bytes: Buffer.from(before.kept) },
    ]);
    await store.put(pack.key, pack.body);
    await recordArchives(sqlOfPg(pool), { done: pack.logs, failed: [] });
    for (const key of firstPacks) if (key !== null) await store.delete(key);
    expect(await filesContaining(doomedMarker)).toEqual([pack.key]);
    expect(await filesContaining(keptMarker)).toEqual([pack.key]);

    // Each log reads back as its own range, through the API's route too.
    expect(await archivedNdjson(pool, store, kept.executionId)).toBe(before.kept);
    const route = await fetch(`${k.url}/api/v1/executions/${doomed.executionId}/log.ndjson`, { headers: { authorization: `Bearer ${token}` } });
    expect(await route.text()).toBe(before.doomed);

    expect((await k.gql('mutation($id: ID!) { deleteJob(id: $id) }', { id: doomed.jobId }, token)).data?.deleteJob).toBe(true);
    await waitFor(async () => ((await filesContaining(doomedMarker)).length === 0 ? true : undefined), 30_000, 'the deleted log to leave the store');
    await waitFor(async () => ((await pool.query(`select 1 from log_pack_compactions`)).rowCount === 0 ? true : undefined), 30_000, 'the compaction to be done');
    // The kept log moved to a new pack, byte for byte, and is read from there.
    const moved = await logKey(kept.executionId);
    expect(moved).not.toBe(pack.key);
    expect(await store.exists(pack.key)).toBe(false);
    expect(await filesContaining(keptMarker)).toEqual([moved]);
    expect(await archivedNdjson(pool, store, kept.executionId)).toBe(before.kept);
    const text = await fetch(`${k.url}/api/v1/executions/${kept.executionId}/log`, { headers: { authorization: `Bearer ${token}` } });
    expect(await text.text()).toContain(`[kiln] step 1/1: true ${keptMarker}`);
  });
});
