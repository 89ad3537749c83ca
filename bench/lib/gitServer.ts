import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';

/**
 * A git server for checkout tests and benchmarks (test/helpers/gitServer.ts, bench/hostile/gitBomb.ts):
 * `git daemon` in a container of a git image (kiln-test/git, scripts/build-test-images.sh), on a
 * docker network of its own (internal: no route anywhere else), serving the bare repositories it
 * was given. Checkout containers reach it when KILN_CHECKOUT_NETWORK names `network`.
 */
export interface GitServer {
  network: string;
  /** The server's name on `network`. */
  host: string;
  /** `git://host/<name>` for a repository given to startGitServer. */
  url(name: string): string;
  stop(): Promise<void>;
}

/** Runs git on this machine (fixtures only: Kiln's runner never does) with no user configuration. */
export function hostGit(dir: string, args: string[], input?: string): string {
  return execFileSync('git', ['-C', dir, '-c', 'user.name=Kiln Test', '-c', 'user.email=test@kiln.invalid', '-c', 'init.defaultBranch=main', ...args], {
    encoding: 'utf8',
    input,
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  }).trim();
}

/**
 * The review's git bomb: one blob, a tree of 10 entries of it, then `levels - 1` levels of trees
 * of 10 entries of the level below: a few KB of objects, 10^levels files once checked out.
 * Returns the bare repository's directory; `main` points at the bomb's commit.
 */
export function makeGitBomb(parent: string, name: string, levels: number): string {
  const dir = path.join(parent, name);
  execFileSync('git', ['init', '-q', '--bare', dir], { env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' } });
  const blob = hostGit(dir, ['hash-object', '-w', '--stdin'], 'x\n');
  const ten = (mode: string, type: string, id: string, prefix: string) =>
    Array.from({ length: 10 }, (_, i) => `${mode} ${type} ${id}\t${prefix}${i}\n`).join('');
  let tree = hostGit(dir, ['mktree'], ten('100644', 'blob', blob, 'f'));
  for (let level = 1; level < levels; level++) tree = hostGit(dir, ['mktree'], ten('040000', 'tree', tree, 'd'));
  const commit = hostGit(dir, ['commit-tree', '-m', 'bomb', tree]);
  hostGit(dir, ['update-ref', 'refs/heads/main', commit]);
  return dir;
}

/** The sshd of a git server: its host key, and the public keys it lets in as root. */
export interface SshServerKeys {
  /** OpenSSH private host key (ed25519). */
  hostKey: string;
  authorizedKeys: string[];
}

const SSHD_CONFIG = [
  'Port 22',
  'HostKey /etc/ssh/ssh_host_ed25519_key',
  'AuthorizedKeysFile /etc/ssh/authorized_keys',
  'PermitRootLogin prohibit-password',
  'PasswordAuthentication no',
  'KbdInteractiveAuthentication no',
  'UsePAM no',
  'StrictModes no',
  'PidFile none',
  '',
].join('\n');

export interface GitServerOptions {
  /** The git image (git, git daemon, and with `ssh`, sshd). */
  image: string;
  /** Names the network `<prefix>-git-<id>` and the container `<prefix>-gitd-<id>`. */
  prefix: string;
  /** On the network and the container, so that leftovers can be found. */
  labels: Record<string, string>;
  ssh?: SshServerKeys;
}

/**
 * Starts the server with the bare repositories under `reposDir` (each a directory `<name>`): git
 * daemon on 9418, and with `ssh`, sshd on 22 too (`ssh://root@host/srv/git/<name>`). The
 * repositories are copied into the container: `reposDir` may go once this returns. On a failure
 * here, what was created is removed.
 */
export async function startGitServer(docker: Dockerode, reposDir: string, opts: GitServerOptions): Promise<GitServer> {
  const id = randomBytes(4).toString('hex');
  const network = `${opts.prefix}-git-${id}`;
  const host = `${opts.prefix}-gitd-${id}`;
  const stop = async () => {
    await docker.getContainer(host).remove({ force: true, v: true }).catch(() => undefined);
    await docker.getNetwork(network).remove().catch(() => undefined);
  };
  try {
    await docker.createNetwork({ Name: network, Internal: true, Labels: opts.labels });
    await startDaemon(docker, reposDir, { ...opts, network, host });
  } catch (err) {
    await stop();
    throw err;
  }
  return { network, host, url: (name) => `git://${host}/${name}`, stop };
}

/** Creates the container `host` on `network`, copies the repositories (and sshd's files) in, starts it. */
async function startDaemon(docker: Dockerode, reposDir: string, opts: GitServerOptions & { network: string; host: string }): Promise<void> {
  const { ssh, network, host } = opts;
  const container = await docker.createContainer({
    Image: opts.image,
    name: host,
    Labels: opts.labels,
    Entrypoint: [
      '/bin/sh',
      '-c',
      `${ssh ? '/usr/sbin/sshd -e -f /etc/ssh/sshd_config && ' : ''}exec git daemon --export-all --base-path=/srv/git --reuseaddr --listen=0.0.0.0 --port=9418 /srv/git`,
    ],
    Cmd: [],
    // sshd needs the engine's default capabilities to drop to its privilege-separation user.
    HostConfig: { NetworkMode: network, ...(ssh ? {} : { CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] }) },
  });
  // The repositories go in as a tar made on this machine (fixtures, not the runner).
  const staging = await mkdtemp(path.join(tmpdir(), `${opts.prefix}-gitd-`));
  try {
    execFileSync('mkdir', ['-p', path.join(staging, 'srv')]);
    execFileSync('cp', ['-a', reposDir, path.join(staging, 'srv', 'git')]);
    if (ssh) {
      await mkdir(path.join(staging, 'etc', 'ssh'), { recursive: true });
      await writeFile(path.join(staging, 'etc', 'ssh', 'sshd_config'), SSHD_CONFIG);
      await writeFile(path.join(staging, 'etc', 'ssh', 'ssh_host_ed25519_key'), ssh.hostKey, { mode: 0o600 });
      await writeFile(path.join(staging, 'etc', 'ssh', 'authorized_keys'), `${ssh.authorizedKeys.join('\n')}\n`, { mode: 0o600 });
    }
    const tar = execFileSync('tar', ['-c', '-f', '-', '-C', staging, '--owner=0', '--group=0', '--numeric-owner', 'srv', ...(ssh ? ['etc'] : [])], {
      maxBuffer: 256 * 1024 * 1024,
    });
    await container.putArchive(tar, { path: '/' });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  await container.start();
}
