import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CITATION = /docs\/design\.md#([a-z0-9-]+)/g;

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, dir), { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && /\.(ts|js|md)$/.test(e.name)).map((e) => path.join(e.parentPath, e.name));
}

describe('docs/design.md', () => {
  it('has a section for every anchor the code and the README cite', async () => {
    const design = await readFile(path.join(ROOT, 'docs/design.md'), 'utf8');
    const anchors = new Set([...design.matchAll(/<a id="([a-z0-9-]+)"><\/a>/g)].map((m) => m[1]));
    const dirs = ['src', 'test', 'chaos', 'bench', 'migrations'];
    const files = [...(await Promise.all(dirs.map(sourceFiles))).flat(), path.join(ROOT, 'README.md')];
    const missing: string[] = [];
    for (const file of files) {
      for (const m of (await readFile(file, 'utf8')).matchAll(CITATION)) {
        if (!anchors.has(m[1])) missing.push(`${path.relative(ROOT, file)}: #${m[1]}`);
      }
    }
    expect(anchors.size).toBeGreaterThan(5);
    expect(missing).toEqual([]);
  });
});
