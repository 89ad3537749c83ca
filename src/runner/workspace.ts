import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ContainerBackend, ContainerHandle } from './types.js';

/** Where the repository comes from, as the job file gives it. */
export interface RepositoryRef {
  url: string;
  ref: string;
}

/** How checkouts are made on the worker host. */
export interface CheckoutOptions {
  /** Transports git may use (GIT_ALLOW_PROTOCOL), e.g. `https`, `ssh`, `file`. */
  protocols: readonly string[];
  /** Stops git (the run was cancelled or timed out). */
  signal?: AbortSignal;
}

/** A checkout failed for a reason that belongs to the job (bad URL, unknown ref, refused transport). */
export class CheckoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckoutError';
  }
}

/** Most bytes of git's own messages kept for an error report. */
const MAX_GIT_OUTPUT = 8 * 1024;

/**
 * Clones `repo` at `ref` on the worker host and copies the tree (with its `.git`) into `dir` of
 * the container, owned by the user the steps run as. The build container itself needs no network.
 * Returns the commit checked out.
 *
 * git runs with no system or global configuration, no credential prompts, an empty HOME and only
 * the transports the operator allows; no hook of the repository runs, submodules are not fetched.
 */
export async function checkoutInto(
  backend: ContainerBackend,
  handle: ContainerHandle,
  dir: string,
  repo: RepositoryRef,
  opts: CheckoutOptions,
): Promise<string> {
  const work = await mkdtemp(path.join(tmpdir(), 'kiln-checkout-'));
  try {
    const tree = path.join(work, 'tree');
    const commit = await clone(repo, tree, work, opts);
    const owner = await ownerOf(backend, handle);
    await backend.copyIn(handle, dir, tarOf(tree, owner, opts.signal));
    return commit;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function clone(repo: RepositoryRef, tree: string, home: string, opts: CheckoutOptions): Promise<string> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    SSH_ASKPASS: 'true',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes',
    GIT_ALLOW_PROTOCOL: opts.protocols.join(':'),
  };
  const git = (args: string[]) => run('git', args, { env, signal: opts.signal });
  const shown = redactUrl(repo.url);
  await git(['init', '-q', tree]);
  // A shallow fetch of just the ref serves branches, tags and (where the server allows it) commit ids.
  const shallow = await git(['-C', tree, 'fetch', '-q', '--depth=1', '--no-tags', '--', repo.url, repo.ref]);
  let target = 'FETCH_HEAD';
  if (shallow.code !== 0) {
    const full = await git(['-C', tree, 'fetch', '-q', '--no-tags', '--', repo.url, '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*']);
    if (full.code !== 0) throw new CheckoutError(`cannot fetch ${shown}: ${gitMessage(full.stderr, repo.url)}`);
    target = '';
    for (const candidate of [repo.ref, `origin/${repo.ref}`]) {
      const found = await git(['-C', tree, 'rev-parse', '--verify', '-q', '--end-of-options', `${candidate}^{commit}`]);
      if (found.code === 0) {
        target = found.stdout.trim();
        break;
      }
    }
    if (target === '') throw new CheckoutError(`${shown} has no branch, tag or commit "${repo.ref}"`);
  }
  const checkout = await git(['-C', tree, '-c', 'advice.detachedHead=false', 'checkout', '-q', '--detach', target]);
  if (checkout.code !== 0) throw new CheckoutError(`cannot check out "${repo.ref}" of ${shown}: ${gitMessage(checkout.stderr, repo.url)}`);
  const head = await git(['-C', tree, 'rev-parse', 'HEAD']);
  if (head.code !== 0) throw new CheckoutError(`cannot read the commit of ${shown}: ${gitMessage(head.stderr, repo.url)}`);
  return head.stdout.trim();
}

/**
 * The tree as a tar stream whose entries belong to `owner`, made by the host's tar (symbolic
 * links are archived as links, never followed).
 */
function tarOf(tree: string, owner: { uid: number; gid: number }, signal?: AbortSignal): Readable {
  const child = spawn('tar', ['-c', '-f', '-', '-C', tree, `--owner=${owner.uid}`, `--group=${owner.gid}`, '--numeric-owner', '.'], {
    stdio: ['ignore', 'pipe', 'ignore'],
    signal,
  });
  child.on('error', (err) => child.stdout.destroy(err));
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) child.stdout.destroy(new Error(`tar exited with code ${code}`));
  });
  return child.stdout;
}

/**
 * The numeric uid and gid the container's steps run as: the configured user, resolved through
 * the container's own /etc/passwd and /etc/group when it is a name. Root when the image names none.
 */
async function ownerOf(backend: ContainerBackend, handle: ContainerHandle): Promise<{ uid: number; gid: number }> {
  const [user = '', group] = (handle.user ?? '').split(':');
  if (user === '' || user === 'root' || user === '0') return { uid: 0, gid: group && /^\d+$/.test(group) ? Number(group) : 0 };
  let uid = /^\d+$/.test(user) ? Number(user) : undefined;
  let gid = group !== undefined && /^\d+$/.test(group) ? Number(group) : undefined;
  if (uid === undefined || gid === undefined) {
    const passwd = await readContainerFile(backend, handle, '/etc/passwd');
    const entry = passwd
      ?.split('\n')
      .map((l) => l.split(':'))
      .find((f) => (uid === undefined ? f[0] === user : f[2] === String(uid)));
    if (uid === undefined) {
      if (!entry) throw new CheckoutError(`the image's user "${user}" is not in its /etc/passwd`);
      uid = Number(entry[2]);
    }
    if (gid === undefined && group !== undefined) {
      const groups = await readContainerFile(backend, handle, '/etc/group');
      const g = groups?.split('\n').map((l) => l.split(':')).find((f) => f[0] === group);
      if (!g) throw new CheckoutError(`the image's group "${group}" is not in its /etc/group`);
      gid = Number(g[2]);
    }
    gid ??= entry ? Number(entry[3]) : uid;
  }
  return { uid, gid: gid ?? uid };
}

/** A small file of the container, through the engine's archive API (no tool needed in the image). */
async function readContainerFile(backend: ContainerBackend, handle: ContainerHandle, file: string): Promise<string | null> {
  const tar = await backend.copyOut(handle, file);
  if (tar === null) return null;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of tar) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > 4 * 1024 * 1024) throw new CheckoutError(`${file} of the image is larger than 4 MiB`);
  }
  const archive = Buffer.concat(chunks);
  // One ustar entry: a 512-byte header (size in octal at offset 124), then the content.
  const length = parseInt(archive.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim(), 8);
  return Number.isFinite(length) ? archive.subarray(512, 512 + length).toString('utf8') : null;
}

/** Runs a program to completion, keeping the head of its output. */
function run(
  command: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; signal?: AbortSignal },
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < MAX_GIT_OUTPUT) stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < MAX_GIT_OUTPUT) stderr += d.toString();
    });
    child.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') reject(new Error(`${command} is not installed on the worker host`));
      else reject(err);
    });
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** The URL without credentials, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}

/** git's own reason, in a line or two: its `fatal:`/`error:` lines first, without those words. */
function gitMessage(stderr: string, url: string): string {
  const lines = stderr.split(url).join(redactUrl(url)).split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /^(fatal|error):/.test(l)).map((l) => l.replace(/^(fatal|error):\s*/, ''));
  const text = (errors.length > 0 ? errors : lines).slice(0, 2).join('; ');
  return text === '' ? 'git failed' : text;
}
