import type pg from 'pg';
import { PgImageGrants } from '../../runner/imageGrants.js';
import { operatorCredentials, parseRegistrySecret, registryOf, registrySecretName, type PullAccess } from '../../runner/registryAccess.js';
import type { RunnerSettings } from '../../runner/settings.js';
import type { SecretBox } from '../../secrets/SecretBox.js';
import { loadOwnerSecret } from '../../secrets/ownerSecret.js';

/**
 * What an execution's image may be pulled with (docs/design.md#local-privacy): its owner's secret
 * `REGISTRY_AUTH_<HOST>` when they stored one, else the operator's KILN_REGISTRY_AUTH where
 * KILN_REGISTRY_AUTH_IMAGES allows it for everyone, else nothing; and the grants that keep a
 * private image pulled by one owner from running for another.
 */
export async function pullAccessFor(
  pool: pg.Pool,
  box: SecretBox,
  executionId: string,
  image: string,
  settings: Pick<RunnerSettings, 'registryAuth' | 'registryAuthImages'>,
): Promise<PullAccess> {
  const secret = registrySecretName(registryOf(image));
  const { owner, value } = await loadOwnerSecret(pool, box, executionId, secret);
  const grants = new PgImageGrants(pool);
  if (value !== null) return { owner, credentials: parseRegistrySecret(secret, value), source: 'owner', grants };
  const operator = operatorCredentials(image, settings.registryAuth, settings.registryAuthImages);
  return { owner, credentials: operator, source: operator === null ? 'none' : 'operator', grants };
}
