import type pg from 'pg';
import { ValidationError } from '../errors.js';
import { decodeCursor, pageSize, toPage, type Page } from './paging.js';

/** One try of a delivery (notification_attempts). */
export interface DeliveryTry {
  attempt: number;
  startedAt: Date;
  durationMs: number;
  responseCode: number | null;
  error: string | null;
}

/** A notification delivery as `Job.deliveries` shows it (docs/design.md#notifications). */
export interface DeliveryView {
  id: string;
  event: string;
  channel: string;
  target: string;
  status: string;
  attempts: number;
  responseCode: number | null;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
  count: number;
  executionId: string | null;
  tries: DeliveryTry[];
}

/** Most tries a delivery has (the sender's MAX_ATTEMPTS, plus the re-sends after crashed senders, bounded by it too). */
export const MAX_DELIVERY_TRIES = 10;

/**
 * A page of a job's deliveries, newest first, each with its tries, in one statement (the job is
 * already read for its owner). Keyset on (created_at desc, id) with the job index.
 */
export async function listDeliveries(pool: pg.Pool, jobId: string, first?: number | null, after?: string | null): Promise<Page<DeliveryView>> {
  const size = pageSize(first);
  let at: Date | null = null;
  let afterId: string | null = null;
  if (after) {
    const [ts, id] = decodeCursor(after, ['string', 'string']) as [string, string];
    at = new Date(ts);
    afterId = id;
    if (Number.isNaN(at.getTime())) throw new ValidationError('invalid cursor');
  }
  // Columns named as the view's fields; the tries' times come back as JSON text.
  const { rows } = await pool.query<DeliveryView & { tries: Array<DeliveryTry & { startedAt: string }> }>(
    `select d.id, d.event, d.channel, d.target, d.status, d.attempts, d.response_code as "responseCode", d.last_error as "lastError",
            d.created_at as "createdAt", d.delivered_at as "deliveredAt", d.count, d.execution_id as "executionId",
            coalesce((select jsonb_agg(jsonb_build_object('attempt', a.attempt, 'startedAt', a.started_at, 'durationMs', a.duration_ms,
                                                          'responseCode', a.response_code, 'error', a.error) order by a.attempt)
                        from (select * from notification_attempts a where a.delivery_id = d.id order by a.attempt desc limit ${MAX_DELIVERY_TRIES}) a), '[]') as tries
       from notification_deliveries d
      where d.job_id = $1 and ($2::timestamptz is null or (d.created_at, d.id) < ($2::timestamptz, $3::uuid))
      order by d.created_at desc, d.id desc
      limit $4`,
    [jobId, at, afterId, size + 1],
  );
  const views = rows.map((r): DeliveryView => ({ ...r, tries: r.tries.map((t) => ({ ...t, startedAt: new Date(t.startedAt) })) }));
  return toPage(views, size, (d) => [d.createdAt.toISOString(), d.id]);
}
