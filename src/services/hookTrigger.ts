import { createHmac, timingSafeEqual } from 'node:crypto';
import { LockMode } from '@mikro-orm/core';
import { ExecutionTrigger, Job } from '../entities/index.js';
import { sqlOfEm } from '../util/sql.js';
import { loadOwnerSecrets } from '../secrets/executionSecrets.js';
import type { Deps } from './deps.js';
import { isUuid } from './paging.js';
import { queueManualRun } from './triggerJob.js';

/** One delivery to `POST /api/v1/hooks/:job_id`, as read off the request (docs/design.md#webhook-triggers). */
export interface HookDelivery {
  jobId: string;
  /** `X-Hub-Signature-256`, as sent (possibly absent). */
  signature: string | undefined;
  /** `X-GitHub-Delivery`: a redelivered id runs nothing new. Absent: every delivery runs. */
  deliveryId: string | undefined;
  /** `X-GitHub-Event`: `ping` is answered without a run. */
  event: string | undefined;
  body: Buffer;
}

/** Refused: the caller learns nothing more than this; `reason` is for the server's log only. */
export type HookOutcome =
  | { ok: false; reason: string }
  | { ok: true; executionId: string | null; replayed: boolean; ref: string | null };

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;
const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
const BRANCH = /^refs\/heads\/([A-Za-z0-9._/][A-Za-z0-9._/-]{0,254})$/;
const DELIVERY_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** True when `header` is `sha256=` and the HMAC-SHA256 of `body` keyed by `secret`, compared in constant time. */
export function signatureMatches(secret: string, body: Buffer, header: string | undefined): boolean {
  const given = SIGNATURE.exec(header?.trim().toLowerCase() ?? '');
  if (given === null) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(given[1]!, 'hex'));
}

/**
 * The ref a push payload checks out: its `after` commit (the exact pushed tree, even when the
 * branch has moved on since), else its branch name; null for a payload without either, which
 * runs the job's own ref. A deleted branch (`after` all zeros) runs nothing.
 */
export function pushedRef(body: Buffer): { ref: string | null } | { skip: string } {
  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    return { ref: null };
  }
  if (typeof payload !== 'object' || payload === null) return { ref: null };
  const { ref, after } = payload as { ref?: unknown; after?: unknown };
  if (typeof after === 'string' && /^0+$/.test(after)) return { skip: 'a deleted ref' };
  if (typeof after === 'string' && COMMIT.test(after)) return { ref: after };
  const branch = typeof ref === 'string' ? BRANCH.exec(ref)?.[1] : undefined;
  return { ref: branch !== undefined && !branch.includes('..') ? branch : null };
}

/**
 * Verifies a delivery against the job's `hook.secret` and, when it holds, queues a run of the job
 * as `triggerJob` does, the delivery id recorded in the same transaction under the job's row
 * lock: the same id twice answers with the first run.
 */
export async function deliverHook(deps: Deps, d: HookDelivery): Promise<HookOutcome> {
  if (!isUuid(d.jobId)) return { ok: false, reason: 'not a job id' };
  const job = await deps.orm.em.fork().findOne(Job, { id: d.jobId });
  const secretName = job?.definition.hook?.secret;
  if (job === null || secretName === undefined) return { ok: false, reason: job === null ? 'unknown job' : 'the job has no hook' };
  const secrets = await loadOwnerSecrets(deps.pool, deps.secretBox, job.owner, [secretName]);
  const secret = secrets.get(secretName);
  if (secret === undefined) return { ok: false, reason: `secret ${secretName} is not stored` };
  if (!signatureMatches(secret, d.body, d.signature)) return { ok: false, reason: d.signature ? 'wrong or malformed signature' : 'no signature' };
  if (d.event === 'ping') return { ok: true, executionId: null, replayed: false, ref: null };
  const pushed = pushedRef(d.body);
  if ('skip' in pushed) return { ok: true, executionId: null, replayed: false, ref: null };
  const deliveryId = d.deliveryId !== undefined && DELIVERY_ID.test(d.deliveryId) ? d.deliveryId : undefined;

  return deps.orm.em.fork().transactional(async (em) => {
    const locked = await em.findOne(Job, { id: job.id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (locked === null) return { ok: false, reason: 'the job was deleted meanwhile' };
    const sql = sqlOfEm(em);
    if (deliveryId !== undefined) {
      const [seen] = await sql<{ execution_id: string; ref: string | null }>(
        `select execution_id, ref from hook_deliveries where job_id = $1 and delivery_id = $2`,
        [job.id, deliveryId],
      );
      if (seen !== undefined) return { ok: true, executionId: seen.execution_id, replayed: true, ref: seen.ref };
    }
    const execution = await queueManualRun(deps, em, locked, pushed.ref ?? undefined, ExecutionTrigger.WEBHOOK);
    if (deliveryId !== undefined) {
      await sql(`insert into hook_deliveries (job_id, delivery_id, execution_id, ref) values ($1, $2, $3, $4)`, [job.id, deliveryId, execution.id, pushed.ref]);
    }
    return { ok: true, executionId: execution.id, replayed: false, ref: pushed.ref };
  });
}
