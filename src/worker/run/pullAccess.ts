import type pg from 'pg';
import { PgImageGrants } from '../../runner/imageGrants.js';
import { operatorCredentials, parseRegistrySecret, registryOf, registrySecretName, type PullAccess } from '../../runner/registryAccess.js';
import type { RunnerSettings } from '../../runner/settings.js';
import type { SecretBox } from '../../secrets/SecretBox.js';
import { loadOwnerSecrets } from '../../secrets/executionSecrets.js';

/**
 * What an execution's image may be pulled with (docs/design.md#local-privacy): its owner's secret
 * `REGISTRY_AUTH_<HOST>` when they stored one, else the operator's KILN_REGISTRY_AUTH where
 * KILN_REGISTRY_AUTH_IMAGES allows it for everyone, else nothing; and the grants that keep a
 * private image pulled by one owner from running for another. The secret is read only when a
 * pull happens: most runs find their image present and read nothing.
 */
export function pullAccessFor(
  pool: pg.Pool,
  box: SecretBox,
  owner: string,
  image: string,
  settings: Pick<RunnerSettings, 'registryAuth' | 'registryAuthImages'>,
): PullAccess {
  let resolved: ReturnType<PullAccess['credentials']> | null = null;
  const read: PullAccess['credentials'] = async () => {
    const secret = registrySecretName(registryOf(image));
    const value = (await loadOwnerSecrets(pool, box, owner, [secret])).get(secret);
    if (value !== undefined) return { credentials: parseRegistrySecret(secret, value), source: 'owner' };
    const operator = operatorCredentials(image, settings.registryAuth, settings.registryAuthImages);
    return { credentials: operator, source: operator === null ? 'none' : 'operator' };
  };
  return {
    owner,
    credentials: () => {
      resolved ??= read();
      return resolved;
    },
    grants: new PgImageGrants(pool),
  };
}
