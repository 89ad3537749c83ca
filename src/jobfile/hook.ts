import { Reader, given, type Field } from './reader.js';
import type { HookSpec } from './types.js';
import { ENV_NAME_PATTERN } from './values.js';

const HOOK_KEYS = ['secret'] as const;

/**
 * `hook: { secret: NAME }` (docs/design.md#webhook-triggers): the owner's stored secret that
 * signs `POST /api/v1/hooks/:job_id`. Only the name is checked here; whether it is stored is
 * known when a delivery arrives.
 */
export function lintHook(r: Reader, field: Field): HookSpec | undefined {
  const map = r.map(field, 'a mapping with "secret": the name of a stored secret');
  if (map === undefined) return undefined;
  const secretField = given(r.entries(map, field.path, HOOK_KEYS), 'secret');
  if (secretField === undefined) {
    return void r.error(map.range![0], `${field.path}.secret`, 'missing required key "secret": the name of the stored secret that signs deliveries');
  }
  const secret = r.string(secretField);
  if (secret === undefined) return undefined;
  if (!ENV_NAME_PATTERN.test(secret)) {
    return void r.error(secretField.at, secretField.path, `"${secret}" is not a valid secret name (letters, digits and _, not starting with a digit)`);
  }
  return { secret };
}
