/** Checks of single values of a job file that do not depend on YAML. */

import { posix } from 'node:path';

/** Job names: letters, digits, `.`, `_`, `-`. */
export const JOB_NAME_PATTERN = /^[A-Za-z0-9._-]+$/;
/** Longest job name, in characters. */
export const MAX_JOB_NAME_LENGTH = 100;

/** Names of environment variables and secrets. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * An email address as notifications accept it: one local part and one domain with a dot, no
 * spaces, quotes, angle brackets or commas (a header could otherwise be split or extended).
 */
export const EMAIL_PATTERN = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** Smallest `resources.memory` accepted. */
export const MIN_MEMORY_BYTES = 4 * 1024 * 1024;

// Docker reads `512m` and `1g` as binary multiples, as Kubernetes reads `512Mi`; both are
// accepted, always binary.
const MEMORY_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Bytes of a memory size (`512m`, `1g`, `1Gi`, `256Mi`, or a byte count), or an error message. */
export function parseMemory(value: string | number): number | string {
  const hint = 'write bytes or a size such as 512m, 1g, 256Mi or 1Gi';
  let bytes: number;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return `${value} is not a whole number of bytes; ${hint}`;
    bytes = value;
  } else {
    const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(value.trim());
    if (match === null || (/^i/i.test(match[3]!) && match[2] === '')) return `"${value}" is not a memory size; ${hint}`;
    bytes = Math.floor(Number(match[1]) * MEMORY_UNITS[match[2]!.toLowerCase()]!);
  }
  if (!Number.isSafeInteger(bytes)) return `"${value}" is too large`;
  if (bytes < MIN_MEMORY_BYTES) return `${value} is less than the minimum of 4 MiB`;
  return bytes;
}

/**
 * The canonical form of an artifact path relative to the workspace (`./big`, `.//big` and
 * `././big` are all `big`; a trailing `/` is kept, it reads as "a directory"), or why it is not one:
 * empty, absolute, or leaving the workspace once normalised.
 */
export function normalizeArtifactPath(raw: string): { path: string } | { problem: string } {
  if (raw.trim() === '') return { problem: 'an artifact path must not be empty' };
  if (raw.includes('\0')) return { problem: 'an artifact path must not contain NUL characters' };
  if (/^([/\\]|[A-Za-z]:)/.test(raw)) return { problem: `"${raw}" is absolute; artifact paths are relative to /workspace` };
  // A backslash is an ordinary character in the container, but `..\..` reads as leaving to a person.
  if (raw.split(/[\\]/).includes('..')) return { problem: `"${raw}" leaves the workspace with ".."` };
  const normal = posix.normalize(raw);
  if (normal === '..' || normal.startsWith('../')) return { problem: `"${raw}" leaves the workspace with ".."` };
  return { path: normal };
}

/** The key under which two spellings of one artifact path are the same: `bin` and `./bin/` are. */
export function artifactIdentity(normalPath: string): string {
  return normalPath.replace(/\/+$/, '') || '.';
}
