import type pg from 'pg';
import type { ExecutionPlan } from '../../jobfile/types.js';
import { SecretMasker } from '../../logs/mask.js';
import { removeEarlierNetworks } from '../../runner/services/ExecutionServices.js';
import type { RunnerSettings } from '../../runner/settings.js';
import type { ContainerBackend, ContainerConfig, ContainerHandle } from '../../runner/types.js';
import { checkoutInto, redactUrl } from '../../runner/workspace.js';
import { loadOwnerSecrets, requireSecrets } from '../../secrets/executionSecrets.js';
import type { SecretBox } from '../../secrets/SecretBox.js';

/** What a run does with its owner's secrets (docs/design.md#masking). */
export interface RunSecrets {
  /** The job's secrets, for the steps' environment. */
  env: Record<string, string>;
  /** The repository's deploy key: for the checkout only, never the steps. */
  deployKey: string | null;
  /** Masks every one of them, the deploy key included, in everything the run prints; null: none to mask. */
  masker: SecretMasker | null;
}

/** Reads the job's secrets and deploy key in one query; throws MissingSecretsError naming any the owner lacks. */
export async function openRunSecrets(pool: pg.Pool, box: SecretBox, owner: string, plan: ExecutionPlan): Promise<RunSecrets> {
  const keyName = plan.repository?.sshKey ?? null;
  const wanted = keyName === null ? plan.secrets : [...plan.secrets, keyName];
  const values = await loadOwnerSecrets(pool, box, owner, wanted);
  requireSecrets(values, wanted);
  return {
    env: Object.fromEntries(plan.secrets.map((name) => [name, values.get(name) ?? ''])),
    deployKey: keyName === null ? null : (values.get(keyName) ?? null),
    masker: await SecretMasker.inSlices([...values.values()]),
  };
}

/**
 * An earlier attempt's worker died; its containers (and services' network) may still run on this
 * engine. Never two at once: they go before this attempt starts.
 */
export async function removeEarlierAttempts(backend: ContainerBackend, executionId: string, attempt: number): Promise<void> {
  if (attempt <= 1) return;
  for (const c of await backend.list({ 'kiln.execution': executionId })) {
    if (Number(c.labels['kiln.attempt']) < attempt) await backend.destroy({ id: c.id });
  }
  await removeEarlierNetworks(backend, executionId, attempt);
}

/** Checks the plan's repository out into the started container (inside it: docs/design.md#sandboxed-checkout), saying so in the log. */
export async function checkOutRepository(
  backend: ContainerBackend,
  target: { handle: ContainerHandle; config: ContainerConfig },
  plan: ExecutionPlan,
  deployKey: string | null,
  settings: RunnerSettings,
  signal: AbortSignal,
  say: (text: string) => void,
): Promise<void> {
  const repository = plan.repository;
  if (repository === null) return;
  say(`checking out ${redactUrl(repository.url)} at ${repository.ref} into ${plan.workdir}`);
  const commit = await checkoutInto(backend, target, { url: repository.url, ref: repository.ref, deployKey }, settings, signal);
  say(`checked out commit ${commit}`);
}
