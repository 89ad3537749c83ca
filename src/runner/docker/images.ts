import type Dockerode from 'dockerode';
import type { RegistryCredentials } from '../settings.js';

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

/**
 * The registry host of an image reference, as Docker reads it: the first path component when it
 * has a dot or a port or is `localhost`, else Docker Hub (`docker.io`).
 */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = image.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return first === 'index.docker.io' ? 'docker.io' : first;
  return 'docker.io';
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
  auth: Readonly<Record<string, RegistryCredentials>>;
  signal?: AbortSignal;
}

/**
 * Pulls the image only when it is not present locally; every wait is bounded by `timeoutMs`.
 * Returns the image's configured user (`USER`; empty for root).
 */
export async function ensureImage(docker: Dockerode, image: string, opts: PullOptions): Promise<{ user: string }> {
  const present = await inspectImage(docker, image);
  if (present) return present;
  try {
    await pull(docker, image, opts);
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new ImageUnavailableError(image, messageOf(err), { cause: err });
  }
  const pulled = await inspectImage(docker, image);
  if (!pulled) throw new ImageUnavailableError(image, 'the pull ended but the engine still has no such image');
  return pulled;
}

async function inspectImage(docker: Dockerode, image: string): Promise<{ user: string } | null> {
  try {
    const info = await docker.getImage(image).inspect();
    return { user: info.Config?.User ?? '' };
  } catch (err) {
    if (statusOf(err) === 404) return null;
    throw err;
  }
}

async function pull(docker: Dockerode, image: string, opts: PullOptions): Promise<void> {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const authconfig = authFor(image, opts.auth);
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
