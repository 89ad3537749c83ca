// Loaded before anything else of Kiln, by any Node: plain JavaScript, no imports, no syntax newer
// than Node 12's. Kept in step with package.json's "engines" (test/tenant-config.test.ts checks).

/** The oldest Node Kiln runs on: graphile-worker 0.18 needs 22.18 (module.findPackageJSON). */
export const REQUIRED_NODE = '22.18.0';

/**
 * Why Node `version` (as in process.versions.node, e.g. "20.19.2") cannot run Kiln, in one line;
 * null when it can.
 */
export function nodeVersionProblem(version, required = REQUIRED_NODE) {
  const have = String(version).replace(/^v/, '').split('.').map((n) => Number.parseInt(n, 10));
  const need = required.split('.').map((n) => Number.parseInt(n, 10));
  for (let i = 0; i < need.length; i++) {
    const h = Number.isNaN(have[i]) || have[i] === undefined ? 0 : have[i];
    if (h > need[i]) return null;
    if (h < need[i]) {
      return `Kiln needs Node.js ${required} or newer; this is Node.js ${String(version).replace(/^v?/, 'v')} (${process.execPath}). Install Node 22 LTS and run kiln with it.`;
    }
  }
  return null;
}
