import type pg from 'pg';
import { cacheRoom, findCache, newCacheObjectKey, ownerOfExecution, recordCache } from '../../caches/cacheEntries.js';
import { sqlOfPg } from '../../util/sql.js';
import type { ClaimedExecution } from '../../executions/fence.js';
import { restoreArchive, saveArchive } from '../../runner/cache/cacheArchive.js';
import { renderKey, type KeyContext } from '../../runner/cache/cacheKey.js';
import { isInfrastructureError } from '../../runner/infrastructure.js';
import type { ContainerHandle } from '../../runner/types.js';
import type { RunDeps } from './RunDeps.js';

/** What the restore learnt, for the save. */
interface Restored {
  owner: string;
  key: string;
  exact: boolean;
}

/**
 * The `cache:` of one run (docs/design.md#build-caches): restored after the checkout, before the
 * first step; saved after a run whose steps all succeeded, when the key was not an exact hit.
 * The key's files that do not exist fail the run (CacheKeyError); any other trouble with a cache
 * is a Kiln line of the build log and the run goes on, as if there were no cache. An engine or
 * Postgres that breaks is the infrastructure's and is thrown.
 */
export class RunCache {
  private restored: Restored | null = null;

  constructor(
    private readonly deps: RunDeps,
    private readonly pool: pg.Pool,
    private readonly claimed: ClaimedExecution,
    private readonly log: (message: string) => void,
    private readonly signal: AbortSignal,
  ) {}

  private keyContext(handle: ContainerHandle): KeyContext {
    return { backend: this.deps.backend, handle, workdir: this.claimed.plan.workdir, jobId: this.claimed.jobId, signal: this.signal };
  }

  /** Computes the key (throws CacheKeyError when its files are missing) and restores the best entry. */
  async restore(handle: ContainerHandle): Promise<void> {
    const spec = this.claimed.plan.cache;
    if (!spec) return;
    const ctx = this.keyContext(handle);
    const key = await renderKey(spec.key, ctx);
    const prefixes: string[] = [];
    for (const template of spec.restoreKeys) prefixes.push(await renderKey(template, ctx));
    const owner = await ownerOfExecution(this.pool, this.claimed.id);
    this.restored = { owner, key, exact: false };
    const hit = await findCache(this.pool, owner, key, prefixes);
    if (hit === null) return this.log(`cache: no entry for key "${key}"${prefixes.length ? ` nor restore keys ${prefixes.map((p) => `"${p}"`).join(', ')}` : ''}`);
    const how = hit.exact ? 'exact key' : `restore key "${hit.prefix}"`;
    try {
      await restoreArchive(this.deps.backend, handle, this.deps.runner.store, {
        key: hit.entry.objectKey, size: hit.entry.size, paths: spec.paths, workdir: this.claimed.plan.workdir, signal: this.signal,
      });
    } catch (err) {
      if (this.signal.aborted || isInfrastructureError(err)) throw err;
      return this.log(`cache: restoring key "${hit.entry.key}" failed (${(err as Error).message}); going on without it`);
    }
    this.restored.exact = hit.exact;
    this.log(`cache: restored key "${hit.entry.key}" (${how}, ${hit.entry.size} bytes)`);
  }

  /** Saves the paths under the key after a run that succeeded, unless the key was restored exactly. */
  async save(handle: ContainerHandle, succeeded: boolean): Promise<void> {
    const spec = this.claimed.plan.cache;
    const restored = this.restored;
    if (!spec || restored === null || !succeeded || this.signal.aborted) return;
    if (restored.exact) return this.log(`cache: key "${restored.key}" was restored exactly; not saved again`);
    const { store, settings } = this.deps.runner;
    const limits = { maxOwnerBytes: settings.cacheMaxOwnerBytes, quotaBytes: settings.ownerStorageQuotaBytes };
    const objectKey = newCacheObjectKey(restored.owner);
    try {
      const room = await cacheRoom(sqlOfPg(this.pool), restored.owner, limits);
      if (room === 0) return this.log(`cache: not saved: ${noRoom(0)}`);
      const saved = await saveArchive(this.deps.backend, handle, store, {
        key: objectKey, paths: spec.paths, workdir: this.claimed.plan.workdir, maxBytes: room, signal: this.signal,
      });
      if ('empty' in saved) return this.log(`cache: none of the paths ${spec.paths.join(', ')} exists; nothing saved`);
      const recorded = await recordCache(this.pool, restored.owner, { key: restored.key, objectKey, size: saved.size }, limits);
      if (!recorded.recorded) {
        await store.delete(objectKey).catch(() => undefined);
        if (recorded.why === 'taken') return this.log(`cache: key "${restored.key}" was saved by another run meanwhile; kept that one`);
        return this.log(`cache: key "${restored.key}" not saved: ${noRoom(recorded.roomBytes)}`);
      }
      const evicted = recorded.evicted > 0 ? `; evicted ${recorded.evicted} least recently used (KILN_CACHE_MAX_BYTES)` : '';
      this.log(`cache: saved key "${restored.key}" (${saved.size} bytes, tar.gz)${evicted}`);
    } catch (err) {
      if (this.signal.aborted || isInfrastructureError(err)) throw err;
      this.log(`cache: saving key "${restored.key}" failed (${(err as Error).message}); the run's outcome stands`);
    }
  }
}

/** Why a cache does not fit: the room left by KILN_CACHE_MAX_BYTES and the owner's artifacts under KILN_OWNER_STORAGE_QUOTA. */
function noRoom(roomBytes: number): string {
  return `it does not fit in the ${roomBytes} bytes the owner's caches may hold (KILN_CACHE_MAX_BYTES, less what artifacts take of KILN_OWNER_STORAGE_QUOTA)`;
}
