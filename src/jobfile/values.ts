/** Checks of single values of a job file that do not depend on YAML. */

/** Job names: letters, digits, `.`, `_`, `-`. */
export const JOB_NAME_PATTERN = /^[A-Za-z0-9._-]+$/;
/** Longest job name, in characters. */
export const MAX_JOB_NAME_LENGTH = 100;

/** Names of environment variables and secrets. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

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

/** Null when `path` is a relative path inside the workspace, otherwise why it is not. */
export function checkArtifactPath(path: string): string | null {
  if (path.trim() === '') return 'an artifact path must not be empty';
  if (path.includes('\0')) return 'an artifact path must not contain NUL characters';
  if (/^([/\\]|[A-Za-z]:)/.test(path)) return `"${path}" is absolute; artifact paths are relative to /workspace`;
  if (path.split(/[/\\]/).includes('..')) return `"${path}" leaves the workspace with ".."`;
  return null;
}
