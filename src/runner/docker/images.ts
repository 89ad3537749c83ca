import type Dockerode from 'dockerode';
import { registryOf, registrySecretName, type PullAccess } from '../registryAccess.js';
import type { RegistryCredentials } from '../settings.js';

export { registryOf } from '../registryAccess.js';

/**
 * The image is neither present on the engine nor pullable. A property of the job (a typo,
 * a private image), not of the worker: retrying on another worker will not help.
 */
export class ImageUnavailableError extends Error {
  constructor(readonly image: string, reason: string, options?: { cause?: unknown }) {
    super(`image "${image}" is not available locally and could not be pulled: ${reason}`, options);
    this.name = 'ImageUnavailableError';
  }
}

/** The credentials configured for the image's registry, in the shape dockerode's pull wants. */
export function authFor(
  image: string,
  auth: Readonly<Record<string, RegistryCredentials>>,
): (RegistryCredentials & { serveraddress: string }) | undefined {
  const registry = registryOf(image);
  const creds = auth[registry] ?? (registry === 'docker.io' ? auth['index.docker.io'] ?? auth['https://index.docker.io/v1/'] : undefined);
  if (creds === undefined) return undefined;
  return { ...creds, serveraddress: registry === 'docker.io' ? 'https://index.docker.io/v1/' : registry };
}

export interface PullOptions {
  timeoutMs: number;
  /** Operator credentials per registry, used when no `access` is given (a backend used on its own). */
  auth: Readonly<Record<string, RegistryCredentials>>;
  /** The owner the image is for: their credentials only, and the grants of private images. */
  access?: PullAccess;
  signal?: AbortSignal;
}

/**
 * Pulls the image when it is not present locally; every wait is bounded by `timeoutMs`. With
 * `access`, a present image that was pulled with credentials runs only for an owner granted it;
 * anyone else must pull it again with their own credentials (which proves access, and is cheap:
 * the layers are there). When that fails they get the same error as for an image never pulled,
 * so the error tells nothing of other owners' images. Returns the image's configured user
 * (`USER`; empty for root).
 */
export async function ensureImage(docker: Dockerode, image: string, opts: PullOptions): Promise<{ user: string }> {
  const { access } = opts;
  const present = await inspectImage(docker, image);
  if (present && access === undefined) return present;
  if (present && access !== undefined) {
    const grant = await access.grants.lookup(present.id, access.owner);
    if (!grant.private || grant.granted) return present;
    // An id names what is on this engine only: nothing to pull that could prove access.
    if (namesId(image, present.id)) throw new ImageUnavailableError(image, `no registry has it${pullHint(image)}`);
  }
  const owned = access === undefined ? null : await access.credentials();
  const credentials = owned === null ? authFor(image, opts.auth) : withServer(image, owned.credentials);
  try {
    await pull(docker, image, { ...opts, credentials });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new ImageUnavailableError(image, messageOf(err) + (owned?.source === 'none' ? pullHint(image) : ''), { cause: err });
  }
  const pulled = await inspectImage(docker, image);
  if (!pulled) throw new ImageUnavailableError(image, 'the pull ended but the engine still has no such image');
  // Pulled with the owner's credentials: private from now on. Pulled again to prove access: theirs too.
  if (access && (owned?.source === 'owner' || present)) await access.grants.grant(pulled.id, access.owner);
  return pulled;
}

/** Said when a pull without credentials failed: how to give some (what a private image needs). */
function pullHint(image: string): string {
  return `; to pull with credentials, store them as your secret ${registrySecretName(registryOf(image))}`;
}

/** Whether `image` is (a prefix of) the image id `id` rather than a repository reference. */
function namesId(image: string, id: string): boolean {
  const hex = image.replace(/^sha256:/, '');
  return /^[0-9a-f]{12,64}$/.test(hex) && id.replace(/^sha256:/, '').startsWith(hex);
}

function withServer(image: string, creds: RegistryCredentials | null): (RegistryCredentials & { serveraddress: string }) | undefined {
  if (creds === null) return undefined;
  return { ...creds, serveraddress: registryOf(image) === 'docker.io' ? 'https://index.docker.io/v1/' : registryOf(image) };
}

async function inspectImage(docker: Dockerode, image: string): Promise<{ user: string; id: string } | null> {
  try {
    const info = await docker.getImage(image).inspect();
    return { user: info.Config?.User ?? '', id: info.Id };
  } catch (err) {
    if (statusOf(err) === 404) return null;
    throw err;
  }
}

async function pull(
  docker: Dockerode,
  image: string,
  opts: { timeoutMs: number; signal?: AbortSignal; credentials: (RegistryCredentials & { serveraddress: string }) | undefined },
): Promise<void> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const authconfig = opts.credentials;
  let output: Array<{ error?: string; errorDetail?: { message?: string } }> = [];
  try {
    const stream = await docker.pull(image, { abortSignal: signal, ...(authconfig ? { authconfig } : {}) });
    // Errors met after the pull started arrive as progress objects, not as stream errors,
    // and an aborted stream just closes: both must be checked once it is over.
    output = await new Promise((resolve, reject) => {
      docker.modem.followProgress(stream, (err, result) => (err ? reject(err) : resolve(result)));
    });
  } catch (err) {
    if (!signal.aborted) throw err;
  }
  if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
  if (timeout.aborted) throw new Error(`the pull did not finish within ${opts.timeoutMs} ms`);
  const failure = output.find((event) => event.error !== undefined || event.errorDetail !== undefined);
  if (failure) throw new Error(failure.errorDetail?.message ?? failure.error ?? 'the pull failed');
}

export function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The engine's own words, without dockerode's "(HTTP code 500) server error - " prefix. */
export function messageOf(err: unknown): string {
  const json = (err as { json?: { message?: unknown } } | null)?.json;
  if (json && typeof json.message === 'string') return json.message.trim();
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}
