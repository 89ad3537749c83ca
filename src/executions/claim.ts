import type pg from 'pg';
import type { ExecutionPlan } from '../jobfile/types.js';
import type { ClaimedExecution } from './fence.js';
import { inTransaction } from '../util/sql.js';

/**
 * QUEUED -> RUNNING with a lease: the claim. See docs/design.md#dispatch.
 *
 * Invariants:
 * - Never two at once: the partial unique index `executions_one_running_per_job` admits one
 *   RUNNING execution per job. A claim that would make a second fails as a whole with a unique
 *   violation (23505) and changes nothing; the caller claims again.
 * - Fair share: each owner's queued executions are ranked by priority, then age; an owner's
 *   n-th best counts as `running + n`, and the lowest counts win, so an owner with a thousand
 *   queued runs takes a slot only when its turn comes against every other owner's next run.
 * - Per-owner cap: with `ownerCap` > 0 no owner gets more than `ownerCap` RUNNING executions.
 *   The claims of all workers are then serialised by one transaction-scoped advisory lock, so
 *   the count each claim reads is the truth (one statement reads one snapshot, taken before any
 *   lock it waits for, so the count and the lock cannot share a statement).
 */

/** What a claim needs to know. */
export interface ClaimOptions {
  workerId: string;
  leaseMs: number;
  /** Most executions to claim at once: this worker's free slots. */
  limit: number;
  /** Most RUNNING executions one owner may have; 0 = no cap. */
  ownerCap: number;
}

/**
 * The advisory lock that serialises capped claims: "kiln" + 1, a bigint beyond 32 bits so that it
 * is never the scheduler leader's key ("kiln", held for the whole leadership).
 */
const CAP_LOCK = '7739836654315110401'; // 0x6b696c6e_00000001

const UNIQUE_VIOLATION = '23505';
/** Claims lost in a row to other workers' claims of the same jobs before this one gives up until its next wake-up. */
const MAX_RACES = 3;

/** A claimed row as Postgres returns it (or as JSON, from the finish that claims: see finisher.ts). */
export interface ClaimRow {
  id: string;
  job_id: string;
  owner: string;
  number: number;
  attempt: number;
  last_seq: number;
  plan: ExecutionPlan;
  lateness: number | null;
  followed: boolean;
}

/** Parameter positions of a claim's values in the statement that holds it. */
export interface ClaimParams {
  worker: number;
  lease: number;
  limit: number;
  /** Position of the per-owner cap; null: uncapped (the finish's claim, see finisher.ts). */
  cap: number | null;
}

const setRunning = (p: Pick<ClaimParams, 'worker' | 'lease'>) =>
  `status = 'RUNNING', started_at = now(), worker_id = $${p.worker}, lease_expires_at = now() + $${p.lease} * interval '1 millisecond'`;

const RETURNING = `returning e.id, e.job_id, e.owner, e.number, e.attempt, e.last_seq, e.plan,
  case when e.trigger = 'SCHEDULE' and e.attempt = 1 and e.scheduled_for is not null
       then extract(epoch from e.started_at - e.scheduled_for)::float8 end as lateness,
  kiln_owner_followed(e.owner) as followed`;

/**
 * The claim as common table expressions (owners, loads, heads, ranked, chosen, taken, claimed; to
 * follow `with recursive`), claiming up to `$limit` executions; `claimed` holds the ClaimRows.
 * Owners are found by a loose index scan (one index probe per owner with queued work), their
 * RUNNING executions counted once each (not once per candidate); each contributes its
 * best `$limit` claimable executions (due, not cancelled, at most one per job, none of a job
 * already running in this statement's snapshot).
 *
 * The chosen rows are locked by their tuple ids (a TID scan, whatever the statistics say): joined
 * by id, a plan made while the queue was short scanned the whole dispatch index for every claim
 * once it was long (40 ms a claim with 6,000 queued). Its status test is written `is not false`
 * (status is never null) so that no partial index on QUEUED rows can serve this scan. A row
 * claimed or cancelled since this statement's snapshot fails that test when the lock rechecks its
 * newest version, and skip locked passes over a row another claim holds.
 */
export function claimCtes(p: ClaimParams): string {
  const capped = p.cap === null ? 'true' : `$${p.cap}::int = 0 or turn <= $${p.cap}::int`;
  return `owners as (
  (select e.owner from executions e where e.status = 'QUEUED' order by e.owner limit 1)
  union all
  select (select e.owner from executions e where e.status = 'QUEUED' and e.owner > o.owner order by e.owner limit 1)
    from owners o where o.owner is not null
), loads as materialized (
  select o.owner, (select count(*) from executions r where r.owner = o.owner and r.status = 'RUNNING') as running
    from owners o where o.owner is not null
), heads as (
  select h.*, o.running, row_number() over (partition by h.job_id order by h.priority desc, h.queued_at, h.id) as in_job
    from loads o
    cross join lateral (
      select e.id, e.ctid, e.owner, e.job_id, e.priority, e.queued_at from executions e
       where e.status = 'QUEUED' and e.owner = o.owner and e.run_at <= now() and e.cancel_requested_at is null
         and not exists (select 1 from executions r where r.job_id = e.job_id and r.status = 'RUNNING')
       order by e.priority desc, e.queued_at, e.id
       limit $${p.limit}
    ) h
), ranked as (
  select h.id, h.ctid, h.priority, h.queued_at,
         row_number() over (partition by h.owner order by h.priority desc, h.queued_at, h.id) + h.running as turn
    from heads h where h.in_job = 1
), chosen as (
  select id, ctid from ranked where ${capped}
   order by turn, priority desc, queued_at, id limit $${p.limit}
), taken as (
  select e.id from executions e
   where e.ctid = any (array(select ctid from chosen)) and e.id = any (array(select id from chosen))
     and (e.status = 'QUEUED') is not false and e.cancel_requested_at is null
   for update of e skip locked
), claimed as (
  update executions e set ${setRunning(p)}
    from taken t where e.id = t.id
  ${RETURNING}
)`;
}

/** Picks and claims up to `$3` executions for worker `$1` with a lease of `$2` ms, owners capped at `$4`. */
const CLAIM_NEXT = `with recursive ${claimCtes({ worker: 1, lease: 2, limit: 3, cap: 4 })}
select * from claimed`;

export function toClaimed(r: ClaimRow, workerId: string, claimSentAt: number): ClaimedExecution {
  return {
    id: r.id, jobId: r.job_id, owner: r.owner, number: r.number, attempt: r.attempt, workerId, lastSeq: Number(r.last_seq), plan: r.plan,
    fireLatenessSec: r.lateness === null ? null : Number(r.lateness),
    claimSentAt,
    followed: r.followed,
  };
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === UNIQUE_VIOLATION;
}

/**
 * Claims the next executions this worker should run, at most `limit`, in one statement (two, in
 * one transaction, with a per-owner cap). Returns [] when nothing is claimable.
 */
export async function claimNext(pool: pg.Pool, o: ClaimOptions): Promise<ClaimedExecution[]> {
  if (o.limit <= 0) return [];
  const params = [o.workerId, o.leaseMs, o.limit, o.ownerCap];
  for (let race = 1; ; race++) {
    const sentAt = Date.now();
    try {
      const rows =
        o.ownerCap > 0
          ? await inTransaction(pool, async (sql) => {
              await sql(`select pg_advisory_xact_lock(${CAP_LOCK}::bigint)`);
              return sql<ClaimRow>(CLAIM_NEXT, params);
            })
          : // Named: each connection plans it once, not at every claim.
            (await pool.query<ClaimRow>({ name: 'kiln_claim_next', text: CLAIM_NEXT, values: params })).rows;
      return rows.map((r) => toClaimed(r, o.workerId, sentAt));
    } catch (err) {
      // Another worker claimed an execution of the same job meanwhile: claim again, it now counts.
      if (isUniqueViolation(err) && race < MAX_RACES) continue;
      if (isUniqueViolation(err)) return [];
      throw err;
    }
  }
}

export type ClaimResult = { kind: 'claimed'; execution: ClaimedExecution } | { kind: 'busy' } | { kind: 'gone' };

/**
 * Claims one given execution: 'busy' while another execution of its job runs, 'gone' when it is
 * no longer QUEUED (cancelled, already run, deleted). Tests and tools use it; workers use claimNext.
 */
export async function claimExecution(pool: pg.Pool, executionId: string, workerId: string, leaseMs: number): Promise<ClaimResult> {
  const sentAt = Date.now();
  try {
    const { rows } = await pool.query<ClaimRow>(
      `update executions e set ${setRunning({ worker: 1, lease: 2 })} where e.id = $3 and e.status = 'QUEUED' and e.cancel_requested_at is null ${RETURNING}`,
      [workerId, leaseMs, executionId],
    );
    return rows[0] ? { kind: 'claimed', execution: toClaimed(rows[0], workerId, sentAt) } : { kind: 'gone' };
  } catch (err) {
    if (isUniqueViolation(err)) return { kind: 'busy' };
    throw err;
  }
}
