import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { requestPrefixDeletion } from '../executions/storeDeletions.js';
import { inTransaction, sqlOfPg, type Sql } from '../util/sql.js';

/**
 * The table `cache_entries` (docs/design.md#build-caches): nothing else reads or writes it. Every
 * statement is scoped by owner, and the owner is always the one of the execution at hand, read
 * from `executions`, never taken from the job file.
 */

/** One stored cache. */
export interface CacheEntry {
  id: string;
  key: string;
  objectKey: string;
  size: number;
}

/** How a lookup matched: the exact key, or the newest entry under a restore prefix. */
export interface CacheHit {
  entry: CacheEntry;
  exact: boolean;
  /** The restore prefix that matched (for the log); null for the exact key. */
  prefix: string | null;
}

/** The owner of execution `executionId`. */
export async function ownerOfExecution(pool: pg.Pool, executionId: string): Promise<string> {
  const { rows } = await pool.query<{ owner: string }>(`select owner from executions where id = $1`, [executionId]);
  if (rows[0] === undefined) throw new Error(`execution ${executionId} is gone`);
  return rows[0].owner;
}

/**
 * Where an owner's caches live in the store: a hash of the owner (owners are free text, keys are
 * paths), and a fresh folder per entry, so that an evicted entry is one prefix to delete.
 */
export function cacheObjectPrefix(owner: string): string {
  return `caches/${createHash('sha256').update(owner).digest('hex').slice(0, 32)}/`;
}

/** A new object key for an entry of `owner`: `caches/<owner hash>/<uuid>/cache.tar.gz`. */
export function newCacheObjectKey(owner: string): string {
  return `${cacheObjectPrefix(owner)}${randomUUID()}/cache.tar.gz`;
}

const COLUMNS = `id, key, object_key as "objectKey", size::float8 as size`;

/**
 * The owner's entry for `key`, else the newest entry whose key starts with each prefix in order.
 * A hit is marked used now (the eviction order).
 */
export async function findCache(pool: pg.Pool, owner: string, key: string, prefixes: readonly string[]): Promise<CacheHit | null> {
  let hit: CacheHit | null = null;
  const exact = await pool.query<CacheEntry>(`select ${COLUMNS} from cache_entries where owner = $1 and key = $2`, [owner, key]);
  if (exact.rows[0] !== undefined) hit = { entry: exact.rows[0], exact: true, prefix: null };
  for (const prefix of prefixes) {
    if (hit !== null) break;
    const { rows } = await pool.query<CacheEntry>(
      `select ${COLUMNS} from cache_entries where owner = $1 and starts_with(key, $2) order by created_at desc, id limit 1`,
      [owner, prefix],
    );
    if (rows[0] !== undefined) hit = { entry: rows[0], exact: false, prefix };
  }
  if (hit !== null) await pool.query(`update cache_entries set last_used_at = now() where id = $1`, [hit.entry.id]);
  return hit;
}

/** What recordCache did: whether the entry is now the key's (else why not), and how many older entries it evicted. */
export type RecordedCache = { recorded: true; evicted: number } | { recorded: false; why: 'taken' | 'no-room'; roomBytes: number };

/** How much an owner's caches may hold: KILN_CACHE_MAX_BYTES, and what the owner's artifacts leave of the storage quota. */
export interface CacheLimits {
  maxOwnerBytes: number;
  /** KILN_OWNER_STORAGE_QUOTA; null: no quota. */
  quotaBytes: number | null;
}

/** The bytes the owner's caches may hold now: the cap, or less where artifacts take the quota (docs/design.md#build-caches). */
export async function cacheRoom(sql: Sql, owner: string, limits: CacheLimits): Promise<number> {
  if (limits.quotaBytes === null) return limits.maxOwnerBytes;
  const rows = await sql<{ used: string }>(
    `select coalesce(sum(artifact_bytes), 0)::text as used from executions where owner = $1 and artifact_bytes > 0`,
    [owner],
  );
  return Math.max(0, Math.min(limits.maxOwnerBytes, limits.quotaBytes - Number(rows[0]?.used ?? 0)));
}

/**
 * Records a stored cache object and evicts the owner's least recently used entries until the
 * owner's caches fit in cacheRoom, under one lock per owner so that two saves of one owner
 * cannot both squeeze in. The evicted entries' store folders are queued for deletion in the same
 * transaction (store_deletions), so a crash leaves no orphan. Nothing is recorded when another run
 * saved the same key first, or when the entry alone does not fit: the caller deletes its object.
 */
export async function recordCache(
  pool: pg.Pool,
  owner: string,
  entry: { key: string; objectKey: string; size: number },
  limits: CacheLimits,
): Promise<RecordedCache> {
  return inTransaction(pool, async (sql) => {
    await sql(`select pg_advisory_xact_lock(hashtext('kiln.caches'), hashtext($1))`, [owner]);
    const room = await cacheRoom(sql, owner, limits);
    if (entry.size > room) return { recorded: false, why: 'no-room', roomBytes: room };
    const inserted = await sql(
      `insert into cache_entries (owner, key, object_key, size) values ($1, $2, $3, $4) on conflict (owner, key) do nothing returning id`,
      [owner, entry.key, entry.objectKey, entry.size],
    );
    if (inserted.length === 0) return { recorded: false, why: 'taken', roomBytes: room };
    // Newest use first; the entry just recorded is the newest and fits alone (checked above).
    const evicted = await sql<{ objectKey: string }>(
      `delete from cache_entries where id in (
         select id from (
           select id, sum(size) over (order by last_used_at desc, created_at desc, id) as running
             from cache_entries where owner = $1
         ) ranked where running > $2
       ) returning object_key as "objectKey"`,
      [owner, room],
    );
    await requestPrefixDeletion(sql, evicted.map((e) => e.objectKey.replace(/[^/]+$/, '')));
    return { recorded: true, evicted: evicted.length };
  });
}

/** The owner's caches, most recently used first (tests, and an operator's look). */
export async function listCaches(pool: pg.Pool, owner: string): Promise<Array<CacheEntry & { lastUsedAt: Date }>> {
  return sqlOfPg(pool)(`select ${COLUMNS}, last_used_at as "lastUsedAt" from cache_entries where owner = $1 order by last_used_at desc`, [owner]);
}
