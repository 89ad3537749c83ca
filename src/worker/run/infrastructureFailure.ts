import type pg from 'pg';
import type { EngineGate } from '../../runner/engineGate.js';
import { backoffMs } from '../../util/backoff.js';
import type { Fence } from '../../executions/fence.js';

/**
 * A run broken by the infrastructure (engine restart, Postgres unreachable) is handed to a next
 * attempt, up to this attempt number, not counting attempts lost while the engine was found
 * unreachable; after that it is recorded FAILED with the error.
 */
export const MAX_INFRASTRUCTURE_ATTEMPTS = 5;

/**
 * The wait before a handed-back run may be claimed again: 1 s doubling to 15 s over the counted
 * attempts (the same rule and figures as archive retries: infrastructure expected back within
 * seconds to minutes), so that work resumes within 15 s of its return while a run that keeps
 * breaking the infrastructure is not taken again at once by whichever worker is free.
 */
export const HAND_BACK_BASE_MS = 1000;
/** See HAND_BACK_BASE_MS. */
export const HAND_BACK_MAX_MS = 15_000;

/** What is known of a run that broke on the infrastructure, when its outcome is decided. */
export interface InfrastructureFailure {
  /** The attempt that broke. */
  attempt: number;
  /** Earlier attempts of the execution handed back while their engine was unreachable. */
  engineDownBefore: number;
  /** The worker's engine was found unreachable when (or after) this attempt broke. */
  engineDown: boolean;
}

/** How a run broken by the infrastructure ends: handed to a next attempt due in `delayMs`, or FAILED. */
export type InfrastructureVerdict = { action: 'hand back'; engineDown: boolean; delayMs: number } | { action: 'fail' };

/**
 * Pure. An attempt lost to an unreachable engine is always handed back and never counts: the
 * worker stops taking work until the engine answers, so this cannot loop, and an operator
 * restarting Docker must not fail a user's job. Any other attempt counts; the run is handed back
 * while the counted attempts stay under MAX_INFRASTRUCTURE_ATTEMPTS. The next attempt waits
 * with Kiln's backoff over the counted attempts (HAND_BACK_BASE_MS, HAND_BACK_MAX_MS).
 */
export function infrastructureVerdict(f: InfrastructureFailure): InfrastructureVerdict {
  const counted = Math.max(1, f.attempt - f.engineDownBefore);
  const delayMs = backoffMs(HAND_BACK_BASE_MS, counted, HAND_BACK_MAX_MS);
  if (f.engineDown) return { action: 'hand back', engineDown: true, delayMs };
  return counted < MAX_INFRASTRUCTURE_ATTEMPTS ? { action: 'hand back', engineDown: false, delayMs } : { action: 'fail' };
}

/**
 * Called the moment a run breaks on the infrastructure: asks the engine gate to check at once
 * (the worker stops taking work if the engine is gone), and returns what to await when the run's
 * outcome is decided (after its container is gone, which may be much later): whether the engine was
 * found unreachable at or after the failure. Without a gate, never.
 */
export function witnessEngine(gate: EngineGate | undefined): () => Promise<boolean> {
  if (gate === undefined) return async () => false;
  const at = Date.now();
  const checked = gate.check();
  return async () => {
    await checked;
    return gate.downSince(at);
  };
}

/**
 * The verdict on `fence`'s attempt, with the execution's earlier engine-down attempts read from
 * Postgres. When Postgres is what broke, they count as none: the hand-back (or the FAILED record)
 * cannot be written either, the lease expires and the leader re-queues the execution.
 */
export async function judgeInfrastructureFailure(pool: pg.Pool, fence: Fence, engineDown: boolean): Promise<InfrastructureVerdict> {
  let engineDownBefore = 0;
  try {
    const { rows } = await pool.query<{ n: number }>(`select engine_down_attempts as n from executions where id = $1`, [fence.id]);
    engineDownBefore = rows[0]?.n ?? 0;
  } catch {
    // See above.
  }
  return infrastructureVerdict({ attempt: fence.attempt, engineDownBefore, engineDown });
}
