import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GIT_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { hostGit, makeGitBomb, startGitServer, type GitServer } from './helpers/gitServer.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { containersOf, jobYaml, logsOf, outputOf, submitJob, waitForEnd } from './helpers/runner.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** The git processes among this process's descendants (the worker runs in this process). */
async function gitDescendants(): Promise<string[]> {
  const { stdout } = await run('ps', ['-e', '-o', 'pid=,ppid=,comm=']);
  const children = new Map<number, Array<{ pid: number; comm: string }>>();
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(.+)$/.exec(line);
    if (!m) continue;
    const entry = { pid: Number(m[1]), comm: m[3]!.trim() };
    children.set(Number(m[2]), [...(children.get(Number(m[2])) ?? []), entry]);
  }
  const found: string[] = [];
  const walk = (pid: number): void => {
    for (const child of children.get(pid) ?? []) {
      if (/^git/.test(child.comm)) found.push(`${child.pid} ${child.comm}`);
      walk(child.pid);
    }
  };
  walk(process.pid);
  return found;
}

/** Samples this process's RSS and its git descendants until stopped. */
function watchHost(): { stop(): Promise<{ peakRssGrowth: number; git: string[] }> } {
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const git = new Set<string>();
  let sampling = Promise.resolve();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
    sampling = sampling.then(async () => {
      for (const p of await gitDescendants()) git.add(p);
    });
  }, 100);
  return {
    async stop() {
      clearInterval(timer);
      await sampling;
      return { peakRssGrowth: peak - baseline, git: [...git] };
    },
  };
}

describe('checkout inside the sandbox (issue 11, item 3)', () => {
  let docker: Dockerode;
  let reposDir: string;
  let server: GitServer;
  let k: TestKiln;
  let bob: string;
  let alice: string;

  beforeAll(async () => {
    docker = await requireDocker();
    reposDir = await mkdtemp(path.join(tmpdir(), 'kiln-test-repos-'));
    makeGitBomb(reposDir, 'bomb.git', 6);
    // An ordinary repository: the bystander's.
    const app = path.join(reposDir, 'work');
    await run('mkdir', [app]);
    hostGit(app, ['init', '-q']);
    await writeFile(path.join(app, 'README'), 'hello from alice\n');
    hostGit(app, ['add', '.']);
    hostGit(app, ['commit', '-q', '-m', 'first']);
    hostGit(reposDir, ['clone', '-q', '--bare', app, 'app.git']);
    await rm(app, { recursive: true, force: true });
    server = await startGitServer(docker, reposDir);
    k = await startTestKiln({
      env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_CHECKOUT_NETWORK: server.network, KILN_GIT_PROTOCOLS: 'https,git' },
    });
    [bob, alice] = await Promise.all([k.token('bob'), k.token('alice')]);
  }, 120_000);

  afterAll(async () => {
    await k?.stop();
    await server?.stop();
    if (reposDir) await rm(reposDir, { recursive: true, force: true });
  });

  it.each([
    ['the worker\'s working directory', '.'],
    ['a host directory', '/etc'],
    ['a file:// URL', 'file:///home/kiln/src/private'],
    ['a relative path', '../other'],
  ])('refuses %s at submit, with the diagnostic at the key', async (_what, url) => {
    const res = await fetch(`${k.url}/api/v1/submit_job`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob}`, 'content-type': 'text/yaml' },
      body: jobYaml('Peek', ['ls -la'], [`repository: { url: "${url}", ref: HEAD }`]),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { diagnostics: Array<{ path: string; message: string }> };
    expect(body.diagnostics).toEqual([
      expect.objectContaining({ path: 'jobs[0].repository.url', message: expect.stringMatching(/^url: local paths and file:\/\/ URLs are not allowed on this server \(KILN_GIT_LOCAL_ROOT is not set\)/) }),
    ]);
    // Nothing was stored: Bob has no job.
    const jobs = await k.gql(`{ jobs(first: 10) { edges { node { id } } } }`, {}, bob);
    expect(jobs.data?.jobs.edges).toEqual([]);
  });

  it('refuses a transport the operator did not list, naming the setting', async () => {
    const res = await k.gql(`query($s: String!) { validateJobSpec(spec: $s) { valid diagnostics { path message } } }`, {
      s: jobYaml('Ssh', ['true'], ['repository: { url: "git@example.com:org/repo.git" }']),
    }, bob);
    expect(res.data?.validateJobSpec).toEqual({
      valid: false,
      diagnostics: [{ path: 'jobs[0].repository.url', message: 'url: the ssh transport is not allowed on this server (KILN_GIT_PROTOCOLS allows https, git)' }],
    });
  });

  it('ends a git bomb FAILED with the reason, with the worker host untouched and a bystander\'s build unharmed', async () => {
    // The worker's temp directory is watched: the old checkout made its work tree there.
    const hostTmp = await mkdtemp(path.join(tmpdir(), 'kiln-test-hosttmp-'));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = hostTmp;
    const host = watchHost();
    try {
      const bomb = await submitJob(k, bob, jobYaml('Bomb', ['echo never'], [`repository: { url: "${server.url('bomb.git')}", ref: main }`]));
      const bystander = await submitJob(k, alice, jobYaml('App', ['cat README'], [`repository: { url: "${server.url('app.git')}", ref: main }`]));
      const [bombEnd, appEnd] = await Promise.all([waitForEnd(k, bob, bomb.executionId, 180_000), waitForEnd(k, alice, bystander.executionId, 180_000)]);
      const seen = await host.stop();

      expect(bombEnd.status).toBe('FAILED');
      expect(bombEnd.error).toBe('the repository has more than 100000 files (KILN_CHECKOUT_MAX_FILES)');
      const bombLog = (await logsOf(k, bob, bomb.executionId)).map((l) => l.text);
      expect(bombLog).toContain('error: the repository has more than 100000 files (KILN_CHECKOUT_MAX_FILES)');
      expect(bombLog).not.toContain('never');

      expect(appEnd.status, appEnd.error ?? '').toBe('SUCCEEDED');
      expect(outputOf(await logsOf(k, alice, bystander.executionId))).toEqual(['hello from alice']);

      expect(seen.git).toEqual([]);
      expect(seen.peakRssGrowth).toBeLessThan(100 * MiB);
      console.log(`git bomb: worker RSS grew at most ${(seen.peakRssGrowth / MiB).toFixed(1)} MiB`);
      expect(await readdir(hostTmp)).toEqual([]);
      // The checkout container and the shared workspace volume are gone with the run.
      expect(await containersOf(docker, bomb.executionId)).toEqual([]);
      const volumes = await docker.listVolumes({ filters: { name: [bomb.executionId] } });
      expect(volumes.Volumes ?? []).toEqual([]);
    } finally {
      await host.stop();
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
      await rm(hostTmp, { recursive: true, force: true });
    }
  }, 240_000);

  describe('over ssh', () => {
    let home: string;
    let sshServer: GitServer;
    let sshKiln: TestKiln;
    let carol: string;
    let deployKey: string;
    const savedHome = process.env.HOME;

    /** A fresh ed25519 key pair made by the test machine's ssh-keygen (a fixture). */
    async function keyPair(dir: string, name: string): Promise<{ privateKey: string; publicKey: string }> {
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(dir, name)]);
      return { privateKey: await readFile(path.join(dir, name), 'utf8'), publicKey: (await readFile(path.join(dir, `${name}.pub`), 'utf8')).trim() };
    }

    beforeAll(async () => {
      home = await mkdtemp(path.join(tmpdir(), 'kiln-test-home-'));
      const keys = path.join(home, 'keys');
      await mkdir(keys);
      const [hostKey, workerKey, deploy] = [await keyPair(keys, 'host'), await keyPair(keys, 'worker'), await keyPair(keys, 'deploy')];
      deployKey = deploy.privateKey;
      // The server lets in both the worker user's key and the deploy key.
      sshServer = await startGitServer(docker, reposDir, { hostKey: hostKey.privateKey, authorizedKeys: [workerKey.publicKey, deploy.publicKey] });
      const knownHosts = `${sshServer.host} ${hostKey.publicKey.split(' ').slice(0, 2).join(' ')}\n`;
      // The worker user's own ssh set-up: a key the server accepts, the server's host key, a config using them.
      await mkdir(path.join(home, '.ssh'), { mode: 0o700 });
      await writeFile(path.join(home, '.ssh', 'id_ed25519'), workerKey.privateKey, { mode: 0o600 });
      await writeFile(path.join(home, '.ssh', 'known_hosts'), knownHosts);
      await writeFile(path.join(home, '.ssh', 'config'), 'Host *\n  IdentityFile ~/.ssh/id_ed25519\n  StrictHostKeyChecking no\n');
      // The operator's known hosts, which the checkout trusts.
      const operatorKnownHosts = path.join(keys, 'known_hosts');
      await writeFile(operatorKnownHosts, knownHosts);
      await chmod(home, 0o755);
      await chmod(keys, 0o755);
      process.env.HOME = home;
      sshKiln = await startTestKiln({
        env: {
          KILN_GIT_IMAGE: GIT_TEST_IMAGE,
          KILN_CHECKOUT_NETWORK: sshServer.network,
          KILN_GIT_PROTOCOLS: 'https,ssh',
          KILN_SSH_KNOWN_HOSTS: operatorKnownHosts,
        },
      });
      carol = await sshKiln.token('carol');
    }, 120_000);

    afterAll(async () => {
      if (savedHome === undefined) delete process.env.HOME;
      else process.env.HOME = savedHome;
      await sshKiln?.stop();
      await sshServer?.stop();
      if (home) await rm(home, { recursive: true, force: true });
    });

    it('never uses the worker user\'s key: without a deploy key the server refuses the checkout', async () => {
      const url = `ssh://root@${sshServer.host}/srv/git/app.git`;
      const { executionId } = await submitJob(sshKiln, carol, jobYaml('NoKey', ['cat README'], [`repository: { url: "${url}", ref: main }`]));
      const end = await waitForEnd(sshKiln, carol, executionId, 120_000);
      expect(end.status).toBe('FAILED');
      // The host key was trusted (the operator's known_hosts), and no key was offered.
      expect(end.error).toMatch(/^cannot fetch ssh:\/\/\*\*\*@kiln-test-gitd-.*: .*Permission denied \(publickey\)/);
      expect(outputOf(await logsOf(sshKiln, carol, executionId))).toEqual([]);
    }, 180_000);

    it('checks out with the deploy key the owner stores as a secret, and never shows it', async () => {
      const set = await sshKiln.gql(`mutation($v: String!) { setSecret(name: "DEPLOY_KEY", value: $v) { name } }`, { v: deployKey }, carol);
      expect(set.errors).toBeUndefined();
      const url = `ssh://root@${sshServer.host}/srv/git/app.git`;
      const { executionId } = await submitJob(
        sshKiln,
        carol,
        jobYaml('DeployKey', ['cat README', 'env | grep -c OPENSSH || true'], [`repository: { url: "${url}", ref: main, ssh_key: DEPLOY_KEY }`]),
      );
      const end = await waitForEnd(sshKiln, carol, executionId, 120_000);
      expect(end.status, end.error ?? '').toBe('SUCCEEDED');
      const logs = await logsOf(sshKiln, carol, executionId);
      // The key reached the checkout only: the steps' environment has none of it.
      expect(outputOf(logs)).toEqual(['hello from alice', '0']);
      expect(logs.map((l) => l.text).join('\n')).not.toContain('PRIVATE KEY');
    }, 180_000);
  });
});
