import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { hostGit } from './gitServer.js';

/**
 * The fixture Go module of the real-build tests and `npm run bench -- build` (issue 13):
 * test/fixtures/go/hello (module `example.com/hello`, one package, a passing test and one that
 * fails when HELLO_FAIL=1) and its one dependency `example.com/greet@v1.0.0`, served by a
 * GOPROXY made of plain files (test/fixtures/go/proxy, its .zip written at test time by
 * scripts/go-module-zip.mjs from test/fixtures/go/greet). No network: the proxy is a directory
 * read through a `file://` GOPROXY. The image is kiln-test/go (scripts/build-test-images.sh).
 */
export const GO_MODULE_PATH = 'example.com/hello';
export const GO_DEPENDENCY = { path: 'example.com/greet', version: 'v1.0.0' };

/** Where copyGoModule puts the proxy inside the module; `go ... ./...` skips dot directories. */
export const PROXY_DIR_IN_MODULE = '.goproxy';

/**
 * The env of a job whose checkout (at /workspace) holds the module as copyGoModule lays it out:
 * the module proxy in the checkout, and two compilers at a time at most (a shared 2-core machine).
 */
export const GO_JOB_ENV: Readonly<Record<string, string>> = {
  GOPROXY: `file:///workspace/${PROXY_DIR_IN_MODULE}`,
  GOFLAGS: '-mod=mod -p=2',
};

/**
 * The seed's BuildAndTest steps (fixtures/seed-jobs.yaml) as they run on the module: the seed's
 * `go mod` is not a complete command (it prints its usage and exits 2), so "Set up Go" runs its
 * intent, `go mod download`; the other steps are the seed's own.
 */
export const GO_SEED_STEPS: ReadonlyArray<{ name: string; run: string }> = [
  { name: 'Set up Go', run: 'go mod download' },
  { name: 'Build', run: 'go build -v ./...' },
  { name: 'Test', run: 'go test -v ./...' },
];

/** DESIGN.md section 9's Go cache: the module and build caches, keyed on go.sum, falling back to any `go-` entry. */
export const GO_CACHE = {
  key: 'go-{{ hashFiles "go.sum" }}',
  restore_keys: ['go-'],
  paths: ['/root/go/pkg/mod', '/root/.cache/go-build'],
};

export interface GoJobOptions {
  /** The bare repository (makeGoRepository), cloned at `main`. */
  repository: string;
  image: string;
  /** Added to GO_JOB_ENV (e.g. HELLO_FAIL: '1'). */
  env?: Record<string, string>;
  /** A `cache:` block (e.g. GO_CACHE); none by default. */
  cache?: object;
  steps?: ReadonlyArray<{ name: string; run: string }>;
}

/** A job file of one one-off job `name` running GO_SEED_STEPS (or `steps`) on the module's checkout. */
export function goJobYaml(name: string, opts: GoJobOptions): string {
  const job = {
    name,
    image: opts.image,
    repository: { url: opts.repository, ref: 'main' },
    env: { ...GO_JOB_ENV, ...opts.env },
    timeout: '10m',
    ...(opts.cache ? { cache: opts.cache } : {}),
    steps: (opts.steps ?? GO_SEED_STEPS).map((s) => ({ ...s })),
  };
  return stringify({ jobs: [job] });
}

/** The repository's root, found from this file (bench/lib in the sources, dist/bench/lib once built). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

const fixtures = (...parts: string[]) => path.join(repoRoot(), 'test', 'fixtures', 'go', ...parts);

/**
 * Writes the module proxy into `dest` (created if missing): the committed list, .info and .mod
 * files plus the .zip built from the dependency's source. Returns `dest`, for `GOPROXY=file://<dest>`.
 */
export async function writeGoProxy(dest: string): Promise<string> {
  await cp(fixtures('proxy'), dest, { recursive: true });
  const { path: mod, version } = GO_DEPENDENCY;
  const zip = path.join(dest, mod, '@v', `${version}.zip`);
  execFileSync(process.execPath, [path.join(repoRoot(), 'scripts', 'go-module-zip.mjs'), fixtures('greet'), `${mod}@${version}`, zip]);
  return dest;
}

export interface GoModuleOptions {
  /** Also write the proxy at `<dest>/.goproxy` (GO_JOB_ENV's GOPROXY). Default true. */
  withProxy?: boolean;
}

/** Copies the fixture module's files (go.mod, go.sum, sources) into `dest`, and its proxy unless told not to. */
export async function copyGoModule(dest: string, opts: GoModuleOptions = {}): Promise<string> {
  await mkdir(dest, { recursive: true });
  await cp(fixtures('hello'), dest, { recursive: true });
  if (opts.withProxy !== false) await writeGoProxy(path.join(dest, PROXY_DIR_IN_MODULE));
  return dest;
}

/**
 * Makes a bare repository `<reposDir>/<name>` whose `main` holds the module and its proxy
 * (copyGoModule), to be served by startGitServer(reposDir) or cloned by path under
 * KILN_GIT_LOCAL_ROOT. `edit` may change the work tree before the commit (e.g. go.sum).
 * Returns the bare repository's path.
 */
export async function makeGoRepository(reposDir: string, name = 'hello.git', edit?: (workTree: string) => Promise<void>): Promise<string> {
  const work = await mkdtemp(path.join(tmpdir(), 'kiln-go-module-'));
  try {
    await copyGoModule(work);
    await edit?.(work);
    hostGit(work, ['init', '-q']);
    hostGit(work, ['add', '-A']);
    hostGit(work, ['commit', '-q', '-m', 'example.com/hello']);
    const bare = path.join(reposDir, name);
    hostGit(reposDir, ['clone', '-q', '--bare', work, bare]);
    return bare;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
