import { repositoryAddress } from '../jobfile/repositoryUrl.js';
import { CHECKOUT_SCRIPT, checkoutFailure } from './checkoutScript.js';
import { ContainerUserError, ownerOf } from './containerUser.js';
import type { RunnerSettings } from './settings.js';
import type { ContainerBackend, ContainerConfig, ContainerHandle } from './types.js';

/** Where the repository comes from, as the job file gives it. */
export interface RepositoryRef {
  url: string;
  ref: string;
  /** The private key of an ssh URL (the owner's secret named by `repository.ssh_key`); none = no key offered. */
  deployKey?: string | null;
}

/** The settings a checkout runs under (see RunnerSettings). */
export type CheckoutSettings = Pick<
  RunnerSettings,
  | 'gitProtocols'
  | 'gitLocalRoot'
  | 'gitImage'
  | 'checkoutNetwork'
  | 'checkoutMaxFiles'
  | 'checkoutMaxBytes'
  | 'checkoutTimeoutMs'
  | 'sshKnownHostsFile'
>;

/** A checkout failed for a reason that belongs to the job (bad URL, unknown ref, refused transport, a limit). */
export class CheckoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckoutError';
  }
}

/** Most bytes of git's own messages kept for an error report. */
const MAX_GIT_OUTPUT = 8 * 1024;
/** Where the checkout script writes the deploy key (the container's own /tmp, gone with it). */
const SSH_KEY_FILE = '/tmp/kiln-ssh-key';
/** Label telling a checkout container from the step container of the same attempt. */
export const ROLE_LABEL = 'kiln.role';

/**
 * Fetches `repo` at `ref` into the step container's workdir and returns the commit checked out
 * (docs/design.md#sandboxed-checkout). The work happens in a throw-away checkout container of
 * KILN_GIT_IMAGE that shares the step container's workdir volume: the job's memory, CPU and
 * process limits, a read-only root, no capabilities, the operator's checkout network (none for
 * a local repository, whose directory is mounted read-only), every file it writes bounded by
 * KILN_CHECKOUT_MAX_BYTES, and KILN_CHECKOUT_TIMEOUT_MS. No git process runs on the worker host,
 * and nothing of the host's (keys, config, known_hosts, temp directory) is visible to it.
 *
 * `step` is the step container's config: it must have a `workdirVolume`. Aborting `signal` (the
 * run was stopped) stops the checkout and rejects with the AbortError; the checkout container is
 * removed on every path (the reaper finds it by its labels otherwise).
 */
export async function checkoutInto(
  backend: ContainerBackend,
  step: { handle: ContainerHandle; config: ContainerConfig },
  repo: RepositoryRef,
  settings: CheckoutSettings,
  signal?: AbortSignal,
): Promise<string> {
  const owner = await ownerOf(backend, step.handle).catch((err: unknown) => {
    throw err instanceof ContainerUserError ? new CheckoutError(err.message) : err;
  });
  const spec = checkoutContainerConfig(step.config, repo, settings, `${owner.uid}:${owner.gid}`);
  const handle = await backend.prepare(spec, signal);
  try {
    signal?.throwIfAborted();
    await backend.start(handle);
    return await runCheckout(backend, handle, repo, settings, spec, signal);
  } finally {
    await backend.destroy(handle).catch(() => undefined);
  }
}

/**
 * The checkout container of a step container: its limits and labels (plus `kiln.role`), its
 * workdir volume, the git image, and the network the repository is reached on.
 */
export function checkoutContainerConfig(step: ContainerConfig, repo: RepositoryRef, settings: CheckoutSettings, user: string): ContainerConfig {
  if (step.workdirVolume === undefined) throw new Error('a checkout needs the step container to have a workdir volume');
  const { transport } = repositoryAddress(repo.url);
  const local = transport === 'file';
  const hostFiles = local ? [settings.gitLocalRoot] : transport === 'ssh' ? [settings.sshKnownHostsFile] : [];
  return {
    image: settings.gitImage,
    env: {},
    labels: { ...step.labels, [ROLE_LABEL]: 'checkout' },
    network: local ? 'none' : settings.checkoutNetwork,
    workdir: step.workdir,
    workdirVolume: step.workdirVolume,
    writableMaxBytes: step.writableMaxBytes,
    readOnlyHostDirs: hostFiles.filter((f): f is string => f !== null),
    memoryBytes: step.memoryBytes,
    cpus: step.cpus,
    name: step.name === undefined ? undefined : `${step.name}-checkout`,
    pidsLimit: step.pidsLimit,
    nofileLimit: step.nofileLimit,
    readOnlyRootfs: true,
    writablePaths: [],
    user,
    maxFileBytes: settings.checkoutMaxBytes,
    maxLifetimeSec: settings.checkoutTimeoutMs / 1000 + 60,
  };
}

/** Runs CHECKOUT_SCRIPT in the started checkout container and reads its outcome. */
async function runCheckout(
  backend: ContainerBackend,
  handle: ContainerHandle,
  repo: RepositoryRef,
  settings: CheckoutSettings,
  { memoryBytes, workdir }: ContainerConfig,
  signal?: AbortSignal,
): Promise<string> {
  const output = { STDOUT: '', STDERR: '' };
  const timeout = AbortSignal.timeout(settings.checkoutTimeoutMs);
  let result: Awaited<ReturnType<ContainerBackend['exec']>>;
  try {
    result = await backend.exec(
      handle,
      { command: CHECKOUT_SCRIPT, env: checkoutEnv(repo, settings, workdir), workdir: '/' },
      (stream, data) => {
        if (output[stream].length < MAX_GIT_OUTPUT) output[stream] += data.toString();
      },
      signal ? AbortSignal.any([signal, timeout]) : timeout,
    );
  } catch (err) {
    if (timeout.aborted && !signal?.aborted) {
      throw new CheckoutError(`the checkout of ${redactUrl(repo.url)} took longer than ${settings.checkoutTimeoutMs / 1000} s (KILN_CHECKOUT_TIMEOUT_MS)`);
    }
    throw err;
  }
  const commit = /^commit ([0-9a-f]{40,64})$/m.exec(output.STDOUT)?.[1];
  if (result.exitCode === 0 && commit !== undefined) return commit;
  const facts = {
    shown: redactUrl(repo.url),
    ref: repo.ref,
    stderr: output.STDERR,
    maxFiles: settings.checkoutMaxFiles,
    maxBytes: settings.checkoutMaxBytes,
    memoryBytes,
    oomKilled: result.oomKilled,
  };
  throw new CheckoutError(checkoutFailure(result.exitCode, facts, (stderr) => gitMessage(stderr, repo.url)));
}

/**
 * The script's environment: git with no system configuration (the script writes the global one), no prompts, HOME in the
 * container's own /tmp, only the allowed transports (`file` only with a local root), and ssh that
 * reads no config, offers only the job's deploy key and trusts only the operator's known hosts
 * (KILN_SSH_KNOWN_HOSTS, mounted read-only at its own path).
 */
function checkoutEnv(repo: RepositoryRef, settings: CheckoutSettings, workdir: string): Record<string, string> {
  const protocols = [...settings.gitProtocols, ...(settings.gitLocalRoot !== null ? ['file'] : [])];
  return {
    KILN_URL: repo.url,
    KILN_REF: repo.ref,
    KILN_WORKDIR: workdir,
    KILN_MAX_FILES: String(settings.checkoutMaxFiles),
    KILN_MAX_BYTES: String(settings.checkoutMaxBytes),
    KILN_SSH_KEY: repo.deployKey ?? '',
    HOME: '/tmp',
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    SSH_ASKPASS: 'true',
    GIT_SSH_COMMAND: [
      'ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes',
      `-o IdentityFile=${repo.deployKey ? SSH_KEY_FILE : 'none'}`,
      `-o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile=${settings.sshKnownHostsFile ?? '/dev/null'}`,
    ].join(' '),
    GIT_ALLOW_PROTOCOL: protocols.join(':'),
  };
}

/** The URL without credentials, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}

/**
 * git's own reason, in a line or two: its `fatal:`/`error:` lines, without those words, after the
 * line just before them (ssh's or the server's own reason, e.g. `Permission denied (publickey)`).
 */
function gitMessage(stderr: string, url: string): string {
  const lines = stderr.split(url).join(redactUrl(url)).split('\n').map((l) => l.trim()).filter(Boolean);
  const isError = (l: string) => /^(fatal|error):/.test(l);
  const first = lines.findIndex(isError);
  const cause = first > 0 ? [lines[first - 1]!] : [];
  const errors = lines.filter(isError).map((l) => l.replace(/^(fatal|error):\s*/, ''));
  const text = (errors.length > 0 ? [...cause, ...errors] : lines).slice(0, 2).join('; ');
  return redactCredentials(text === '' ? 'git failed' : text);
}

/** Credentials in any URL of a message (git may print the URL as it resolved it, e.g. with a trailing slash). */
function redactCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}
