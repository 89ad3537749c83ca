import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../src/runner/docker/docker.js';
import { defaultRunnerSettings } from '../src/runner/settings.js';
import type { ContainerHandle } from '../src/runner/types.js';
import { checkoutInto, CheckoutError, redactUrl, type CheckoutSettings } from '../src/runner/workspace.js';
import { GIT_TEST_IMAGE, NONROOT_TEST_IMAGE, removeTestContainers, requireDocker, testContainerConfig } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { jobYaml, outputOf, runJob } from './helpers/runner.js';

/** A git repository on disk with a tag, two branches and known commits, in a directory of its own (`root`). */
interface TestRepo {
  root: string;
  dir: string;
  url: string;
  commits: { v1: string; main: string; feature: string };
}

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=Kiln Test', '-c', 'user.email=test@kiln.invalid', '-c', 'init.defaultBranch=main', ...args], {
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  }).trim();
}

async function makeRepo(): Promise<TestRepo> {
  const root = await mkdtemp(path.join(tmpdir(), 'kiln-repos-'));
  // The checkout runs as the steps' user, who may not be the owner of this directory.
  await chmod(root, 0o755);
  const dir = path.join(root, 'repo');
  execFileSync('mkdir', [dir]);
  git(dir, 'init', '-q');
  await writeFile(path.join(dir, 'version.txt'), 'one\n');
  await writeFile(path.join(dir, 'build.sh'), '#!/bin/sh\necho "building version $(cat version.txt)"\n', { mode: 0o755 });
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'first');
  const v1 = git(dir, 'rev-parse', 'HEAD');
  git(dir, 'tag', '-a', 'v1', '-m', 'version one');
  git(dir, 'checkout', '-q', '-b', 'feature');
  await writeFile(path.join(dir, 'version.txt'), 'feature\n');
  git(dir, 'commit', '-q', '-am', 'feature work');
  const feature = git(dir, 'rev-parse', 'HEAD');
  git(dir, 'checkout', '-q', 'main');
  await writeFile(path.join(dir, 'version.txt'), 'two\n');
  git(dir, 'commit', '-q', '-am', 'second');
  const main = git(dir, 'rev-parse', 'HEAD');
  return { root, dir, url: `file://${dir}`, commits: { v1, main, feature } };
}

function checkoutJob(name: string, repo: TestRepo, ref: string, steps = ['./build.sh', 'cat version.txt'], extra: string[] = []): string {
  return jobYaml(name, steps, [`repository: { url: "${repo.url}", ref: "${ref}" }`, ...extra]);
}

describe('the workspace checkout', () => {
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await makeRepo();
  });

  afterAll(async () => {
    if (repo) await rm(repo.root, { recursive: true, force: true });
  });

  describe('in jobs on the real Docker engine', () => {
    let k: TestKiln;
    let token: string;

    beforeAll(async () => {
      await requireDocker();
      // The checkout runs in a container of the git image; the repositories' directory is allowed.
      k = await startTestKiln({ env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: repo.root } });
      token = await k.token('builder');
    });

    afterAll(async () => {
      await k?.stop();
    });

    it.each([
      ['a tag', 'v1', 'one', 'v1'],
      ['a branch', 'feature', 'feature', 'feature'],
      ['the default branch', 'main', 'two', 'main'],
      ['a commit id', 'V1_COMMIT', 'one', 'v1'],
    ] as const)('builds from a file:// repository checked out at %s', async (_what, ref, version, commit) => {
      const actualRef = ref === 'V1_COMMIT' ? repo.commits.v1 : ref;
      const e = await runJob(k, token, checkoutJob(`Checkout-${version}-${ref.slice(0, 8)}`, repo, actualRef));
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      expect(outputOf(e.logs)).toEqual([`building version ${version}`, version]);
      const system = e.logs.filter((l) => l.stream === 'SYSTEM').map((l) => l.text);
      expect(system).toContain(`checked out commit ${repo.commits[commit]}`);
    });

    it('copies the repository with its history, so builds can ask git about it', async () => {
      const e = await runJob(k, token, checkoutJob('WithHistory', repo, 'main', ['test -d .git && echo has-git', 'cat .git/HEAD']));
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      expect(outputOf(e.logs)).toEqual(['has-git', repo.commits.main]);
    });

    it('fails with the reason when the ref does not exist, before any step runs', async () => {
      const e = await runJob(k, token, checkoutJob('NoSuchRef', repo, 'no-such-branch'));
      expect(e.status).toBe('FAILED');
      expect(e.error).toBe(`${repo.url} has no branch, tag or commit "no-such-branch"`);
      expect(e.steps.every((s) => s.status === 'SKIPPED')).toBe(true);
    });

    it('fails with the reason when the repository does not exist', async () => {
      const e = await runJob(k, token, jobYaml('NoRepo', ['true'], [`repository: { url: "file://${repo.dir}-missing" }`]));
      expect(e.status).toBe('FAILED');
      expect(e.error).toMatch(/^cannot fetch file:\/\/.*-missing: .*(does not appear to be a git repository|not found|No such)/);
    });

    it('hands the files to the user an image runs as, who can then change them', async () => {
      const e = await runJob(
        k,
        token,
        checkoutJob('NonRootCheckout', repo, 'main', ['ls -ln version.txt | tr -s " " | cut -d" " -f3,4', 'echo three > version.txt && ./build.sh'], [`image: ${NONROOT_TEST_IMAGE}`]),
      );
      expect(e.status, e.error ?? '').toBe('SUCCEEDED');
      expect(outputOf(e.logs)).toEqual(['1000 1000', 'building version three']);
    });
  });

  describe('in a checkout container', () => {
    const backend = new DockerBackend();
    const settings: CheckoutSettings = { ...defaultRunnerSettings(), gitImage: GIT_TEST_IMAGE, checkoutNetwork: 'none', gitLocalRoot: null };
    let step: { handle: ContainerHandle; config: ReturnType<typeof testContainerConfig> };

    beforeAll(async () => {
      const docker = await requireDocker();
      await removeTestContainers(docker);
      const config = testContainerConfig({ name: `kiln-workspace-test-${process.pid}`, workdirVolume: { name: `kiln-workspace-test-${process.pid}` } });
      step = { handle: await backend.prepare(config), config };
      await backend.start(step.handle);
    });

    afterAll(async () => {
      if (step) await backend.destroy(step.handle);
    });

    it('refuses a transport the operator did not allow, inside the container too', async () => {
      const attempt = checkoutInto(backend, step, { url: repo.url, ref: 'main' }, { ...settings, gitProtocols: ['https'], gitLocalRoot: null });
      await expect(attempt).rejects.toBeInstanceOf(CheckoutError);
      await expect(attempt).rejects.toThrow(/cannot fetch file:\/\/.*transport 'file' not allowed/);
    });

    it('stops git when the run is stopped', async () => {
      const controller = new AbortController();
      controller.abort();
      const attempt = checkoutInto(backend, step, { url: repo.url, ref: 'main' }, { ...settings, gitLocalRoot: repo.root }, controller.signal);
      await expect(attempt).rejects.toMatchObject({ name: 'AbortError' });
    });

    it('leaves the tree in the step container\'s workdir, with nothing of the checkout container left', async () => {
      const commit = await checkoutInto(backend, step, { url: repo.url, ref: 'v1' }, { ...settings, gitLocalRoot: repo.root });
      expect(commit).toBe(repo.commits.v1);
      const tar = await backend.copyOut(step.handle, '/workspace/version.txt');
      const chunks: Buffer[] = [];
      for await (const chunk of tar!) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString('latin1')).toContain('one\n');
      const docker = await requireDocker();
      const left = await docker.listContainers({ all: true, filters: { name: [`kiln-workspace-test-${process.pid}-checkout`] } });
      expect(left).toEqual([]);
    });

    it('stops a commit whose files are larger than the byte limit, with the limit in the reason', async () => {
      const big = path.join(repo.root, 'big');
      execFileSync('mkdir', [big]);
      git(big, 'init', '-q');
      await writeFile(path.join(big, 'blob.bin'), randomBytes(3 * 1024 * 1024));
      git(big, 'add', '.');
      git(big, 'commit', '-q', '-m', 'big');
      const attempt = checkoutInto(backend, step, { url: big, ref: 'main' }, { ...settings, gitLocalRoot: repo.root, checkoutMaxBytes: 1024 * 1024 });
      await expect(attempt).rejects.toBeInstanceOf(CheckoutError);
      await expect(attempt).rejects.toThrow(/(larger|more) than 1 MiB \(KILN_CHECKOUT_MAX_BYTES\)$/);
    });

    it('never shows the credentials of a URL in the reason a checkout failed', async () => {
      const url = 'https://bob:s3cret-token@git.kiln-test.invalid/org/repo.git';
      const failure = await checkoutInto(backend, step, { url, ref: 'main' }, settings).then(
        () => null,
        (err: Error) => err,
      );
      expect(failure).toBeInstanceOf(CheckoutError);
      expect(failure!.message).toMatch(/^cannot fetch https:\/\/\*\*\*@git\.kiln-test\.invalid\/org\/repo\.git: /);
      expect(failure!.message).not.toContain('s3cret');
    });

    it('never shows credentials of a repository URL', () => {
      expect(redactUrl('https://user:s3cret@git.example.com/org/repo.git')).toBe('https://***@git.example.com/org/repo.git');
      expect(redactUrl('file:///srv/repo')).toBe('file:///srv/repo');
    });
  });
});
