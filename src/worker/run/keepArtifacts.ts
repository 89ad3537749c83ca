import type pg from 'pg';
import type { ClaimedExecution } from '../../executions/fence.js';
import { ownerStorageLeft, recordArtifacts } from '../../executions/artifacts.js';
import { collectArtifacts } from '../../runner/artifacts.js';
import type { ContainerHandle } from '../../runner/types.js';
import type { RunDeps } from './RunDeps.js';

/**
 * Stores the plan's artifacts and records them under the claim, within the limits of
 * docs/design.md#quotas: per artifact, per execution and per owner. Resolves with the reason the
 * execution fails (an artifact that could not be kept), or null; each such reason is also a Kiln
 * line of the build log. Errors that are not the job's (the engine, Postgres) are thrown.
 */
export async function keepArtifacts(
  deps: RunDeps,
  pool: pg.Pool,
  claimed: ClaimedExecution,
  handle: ContainerHandle,
  log: (message: string) => void,
  signal: AbortSignal,
): Promise<string | null> {
  const { settings, store } = deps.runner;
  const quota = settings.ownerStorageQuotaBytes;
  const left = await ownerStorageLeft(pool, claimed.id, quota);
  const collected = await collectArtifacts(deps.backend, handle, store, claimed.plan.artifacts, {
    executionId: claimed.id,
    workdir: claimed.plan.workdir,
    maxBytes: settings.maxArtifactBytes,
    maxExecutionBytes: settings.maxExecutionArtifactBytes,
    owner: quota === null || left === null ? null : { leftBytes: left, quotaBytes: quota },
    log,
    signal,
  });
  // Another execution of the owner may have been recorded since `left` was read: the recording
  // decides, under the owner's lock, and what it refuses leaves the store again.
  const recorded = await recordArtifacts(pool, claimed, collected.records, quota);
  let error = collected.error?.message ?? null;
  if (error !== null) log(`error: ${error}`);
  for (const refused of recorded.refused) {
    await store.delete(refused.key).catch(() => undefined);
    const message =
      `artifact "${refused.path}" does not fit in the owner's storage quota of ${quota} bytes ` +
      `(KILN_OWNER_STORAGE_QUOTA, ${recorded.usedByOthers} bytes used by other executions); it is not stored`;
    log(`error: ${message}`);
    error ??= message;
  }
  return error;
}
