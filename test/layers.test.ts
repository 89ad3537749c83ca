import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, format, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// The same check as `npm run layers`, here so that `npm test` fails when a rule of
// .dependency-cruiser.cjs is broken. The violations are printed in depcruise's own words.
describe('layering', () => {
  it('keeps src/ free of import cycles, its pure leaves pure, its packages declared and the SDK a package apart', async () => {
    const options = await extractDepcruiseOptions(path.join(ROOT, '.dependency-cruiser.cjs'));
    const tsConfigFile = path.join(ROOT, 'tsconfig.json');
    const cruiseOptions = { ...options, baseDir: ROOT, tsConfig: { fileName: tsConfigFile } };
    const result = (await cruise(['src', 'sdk/src'], cruiseOptions, undefined, { tsConfig: extractTSConfig(tsConfigFile) })).output as ICruiseResult;
    const violations = result.summary.violations.filter((v) => v.rule.severity === 'error');
    if (violations.length > 0) console.error((await format(result, { outputType: 'err-long' })).output);
    expect(result.summary.totalCruised).toBeGreaterThan(100);
    expect(violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`)).toEqual([]);
  });
});
