import type pg from 'pg';

/** Ticks deleted per statement: a short transaction, whatever the backlog. */
export const PRUNE_TICKS_BATCH = 5000;
/** Statements per housekeeping run; a backlog larger than this goes on at the next run. */
const MAX_BATCHES = 20;

/**
 * Deletes ticks (the fire-time ledger) whose fire time is older than `retentionMs`
 * (KILN_TICK_RETENTION, docs/design.md#quotas), in batches of PRUNE_TICKS_BATCH rows through the
 * fire-time index. Returns how many it deleted.
 */
export async function pruneTicks(pool: pg.Pool, retentionMs: number, maxBatches = MAX_BATCHES): Promise<number> {
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const { rowCount } = await pool.query(
      `delete from ticks where ctid = any(array(
         select ctid from ticks where fire_time < now() - make_interval(secs => $1) limit $2))`,
      [retentionMs / 1000, PRUNE_TICKS_BATCH],
    );
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < PRUNE_TICKS_BATCH) break;
  }
  return total;
}
