import { formatBytes } from './failures.js';

/** What the kernel says (strerror of ENOSPC) when a write finds its filesystem full. */
const NO_SPACE = Buffer.from('No space left on device');

/**
 * Watches a step's raw output for ENOSPC's message, so that a step failing on a full writable
 * directory is told which limit it met (docs/design.md#quotas). Only a flag is kept: the bytes
 * are not stored or copied. A message split across two reads is missed; the tool's own line
 * still says it.
 */
export class NoSpaceWatch {
  seen = false;

  observe(data: Buffer): void {
    if (!this.seen && data.includes(NO_SPACE)) this.seen = true;
  }
}

/** The Kiln line for a step that failed with a full writable directory. */
export function noSpaceMessage(stepName: string, dirs: readonly string[], maxBytes: number): string {
  return (
    `step "${stepName}" ran out of writable space: ${dirs.join(', ')} may hold ${formatBytes(maxBytes)} each ` +
    `(KILN_WRITABLE_MAX_BYTES), and their content counts against the container's memory limit`
  );
}
