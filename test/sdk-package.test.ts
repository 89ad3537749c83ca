import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const TSC = require.resolve('typescript/bin/tsc');
/** What the SDK may depend on, and so all a project that installs it gets. */
const SDK_DEPENDENCIES = ['@graphql-typed-document-node/core', 'graphql', 'graphql-ws'];

/** Runs a command; resolves with its output or rejects with both streams in the message. */
async function sh(file: string, args: string[], cwd: string, env: Record<string, string | undefined> = process.env): Promise<string> {
  try {
    return (await run(file, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** The typed script of a project that uses the SDK: submit a one-off job and follow its log. */
const FOLLOW = `import { ExecutionLogsDocument, KilnClient, SubmitJobDocument, type LogChunkFieldsFragment } from '@kiln/sdk';

declare const process: { env: Record<string, string | undefined> };

const kiln = new KilnClient({ url: process.env.KILN_URL!, token: process.env.KILN_TOKEN });
const spec = 'jobs:\\n  - name: packaged\\n    steps:\\n      - run: for i in 1 2 3; do echo line-$i; sleep 0.3; done\\n';
const { submitJob } = await kiln.request(SubmitJobDocument, { spec });
const executionId: string = submitJob.jobs[0]!.lastExecution!.id;
const lines: LogChunkFieldsFragment[] = [];
for await (const { executionLogs } of kiln.subscribe(ExecutionLogsDocument, { executionId, afterSeq: 0 })) {
  lines.push(executionLogs);
  console.log(JSON.stringify({ seq: executionLogs.seq, stream: executionLogs.stream, text: executionLogs.text }));
}
await kiln.close();
`;

/** The same client misused: tsc must refuse it, or the types are not really there. */
const MISTYPED = `import { JobDocument, JobsDocument, KilnClient } from '@kiln/sdk';

const kiln = new KilnClient({ url: 'http://127.0.0.1:1' });
const { jobs } = await kiln.request(JobsDocument, { first: 1 });
export const priority: string = jobs.edges[0]!.node.priority;
await kiln.request(JobDocument, { idd: 'x' });
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    lib: ['ES2023', 'DOM'],
    types: [],
    // The package's own declarations are checked too, against only what it installed.
    skipLibCheck: false,
    outDir: 'out',
  },
};

let scratch: string;
let k: TestKiln;

beforeAll(async () => {
  await requireDocker();
  scratch = await mkdtemp(path.join(tmpdir(), 'kiln-sdk-package-'));
  k = await startTestKiln();
});
afterAll(async () => {
  await k?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('the SDK as a package', () => {
  it('packs, installs offline into an empty project with nothing of the server, type-checks a script and follows a build with it', async () => {
    const packs = path.join(scratch, 'packs');
    await mkdir(packs);
    // `npm pack` takes only what `files` names. Its prepack (tsc) is skipped: sdk/dist is what
    // `npm run build` (pretest) just built, and the machine's two cores are shared.
    const pack = async (dir: string) => (JSON.parse(await sh('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packs, dir], scratch)) as Array<{ filename: string; files: Array<{ path: string }> }>)[0]!;
    // The registry is out of reach here (no network): the SDK's dependencies are packed from the
    // copies the repository installed, and npm installs all four with --offline.
    const [packed, ...dependencies] = await Promise.all([path.join(ROOT, 'sdk'), ...SDK_DEPENDENCIES.map((dep) => path.dirname(require.resolve(`${dep}/package.json`)))].map(pack));
    expect(packed!.files.map((f) => f.path).sort()).toEqual(
      ['README.md', 'package.json', ...['client', 'generated', 'index'].flatMap((m) => [`dist/${m}.d.ts`, `dist/${m}.js`, `dist/${m}.js.map`])].sort(),
    );
    const tarballs = [packed!, ...dependencies].map((p) => path.join(packs, p.filename));
    const project = path.join(scratch, 'project');
    await mkdir(project);
    await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-kiln', private: true, type: 'module' }));
    await sh('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', ...tarballs], project);

    // No server code: exactly the SDK and its three dependencies, and the SDK's modules import
    // only each other and those.
    const modules = path.join(project, 'node_modules');
    const installed = (await readdir(modules)).filter((n) => !n.startsWith('.'));
    const names = (await Promise.all(installed.map(async (n) => (n.startsWith('@') ? (await readdir(path.join(modules, n))).map((s) => `${n}/${s}`) : [n])))).flat();
    expect(names.sort()).toEqual(['@graphql-typed-document-node/core', '@kiln/sdk', 'graphql', 'graphql-ws']);
    const dist = path.join(modules, '@kiln/sdk/dist');
    for (const file of (await readdir(dist)).filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))) {
      const source = await readFile(path.join(dist, file), 'utf8');
      const imports = [...source.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map((m) => m[1]!);
      for (const spec of imports) expect(spec.startsWith('./') || SDK_DEPENDENCIES.includes(spec), `${file} imports ${spec}`).toBe(true);
    }

    // One tsc run over both scripts (the machine is slow): the typed one compiles clean and is
    // emitted; the mistyped one fails exactly where it misuses the types.
    await writeFile(path.join(project, 'tsconfig.json'), JSON.stringify({ ...TSCONFIG, files: ['follow.ts', 'mistyped.ts'] }));
    await writeFile(path.join(project, 'follow.ts'), FOLLOW);
    await writeFile(path.join(project, 'mistyped.ts'), MISTYPED);
    const compiled = await sh(process.execPath, [TSC, '-p', '.', '--pretty', 'false'], project).then(
      () => 'no errors',
      (err: Error) => err.message,
    );
    const errors = compiled.split('\n').filter((l) => / error TS\d+/.test(l));
    expect(errors, compiled).toHaveLength(2);
    expect(errors[0]).toMatch(/^mistyped\.ts\(5,14\): error TS2322: Type 'number' is not assignable to type 'string'/);
    expect(errors[1]).toMatch(/^mistyped\.ts\(6,\d+\): error TS2353: .*'idd'/);

    const output = await sh(process.execPath, ['out/follow.js'], project, { PATH: process.env.PATH, KILN_URL: k.url, KILN_TOKEN: await k.token('pia') });
    const lines = output.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; stream: string; text: string });
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    expect(lines.filter((l) => l.stream === 'STDOUT').map((l) => l.text)).toEqual(['line-1', 'line-2', 'line-3']);
    expect(lines.at(-1)).toMatchObject({ stream: 'SYSTEM', text: 'execution succeeded' });
  });
});
