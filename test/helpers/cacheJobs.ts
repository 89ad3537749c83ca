import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jobYaml, type LogLineView } from './runner.js';

/** The repository and jobs of the cache tests (test/cache-*.test.ts). */

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=Kiln Test', '-c', 'user.email=test@kiln.invalid', '-c', 'init.defaultBranch=main', ...args], {
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  }).trim();
}

/** A repository with `deps.lock` on main, a branch `bumped` where it changed, and `linked` with a symlink out. */
export async function makeRepo(): Promise<{ root: string; url: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'kiln-cache-repos-'));
  await chmod(root, 0o755);
  const dir = path.join(root, 'repo');
  execFileSync('mkdir', [dir]);
  git(dir, 'init', '-q');
  await writeFile(path.join(dir, 'deps.lock'), 'greet v1.0.0\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'first');
  git(dir, 'checkout', '-q', '-b', 'bumped');
  await writeFile(path.join(dir, 'deps.lock'), 'greet v1.1.0\n');
  git(dir, 'commit', '-q', '-am', 'bump');
  // Same deps.lock as main, plus a symlink to a file outside the workspace that a glob matches.
  git(dir, 'checkout', '-q', 'main');
  git(dir, 'checkout', '-q', '-b', 'linked');
  await symlink('/etc/passwd', path.join(dir, 'host.lock'));
  git(dir, 'add', 'host.lock');
  git(dir, 'commit', '-q', '-m', 'a symlink out');
  git(dir, 'checkout', '-q', 'main');
  return { root, url: `file://${dir}` };
}

/** A step that builds "slowly" the first time and finds its output in the cache the next. */
export const BUILD = [
  'if [ -f /root/.cache/demo/built ]; then echo "warm: $(cat /root/.cache/demo/built)"; else echo cold; mkdir -p /root/.cache/demo && echo "from $(cat deps.lock)" > /root/.cache/demo/built; fi',
  'mkdir -p out && echo kept > out/also',
];

export function cachedJob(name: string, url: string, ref: string, opts: { key?: string; steps?: string[]; extra?: string[] } = {}): string {
  return jobYaml(name, opts.steps ?? BUILD, [
    `repository: { url: "${url}", ref: ${ref} }`,
    'cache:',
    `  key: ${opts.key ?? 'deps-{{ hashFiles "deps.lock" }}'}`,
    '  restore_keys: [deps-]',
    '  paths: [/root/.cache/demo, /workspace/out]',
    ...(opts.extra ?? []),
  ]);
}

export const kilnLines = (logs: LogLineView[]): string[] => logs.filter((l) => l.stream === 'SYSTEM' && l.text.startsWith('cache: ')).map((l) => l.text);
