import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { createGzip } from 'node:zlib';
import type { ArtifactRecord } from '../entities/Execution.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { ContainerBackend, ContainerHandle } from './types.js';

/** An artifact could not be stored; the execution fails with this reason. */
export class ArtifactError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ArtifactError';
  }
}

/** How artifacts are collected. */
export interface ArtifactOptions {
  executionId: string;
  /** Paths in the job file are relative to this directory of the container. */
  workdir: string;
  /** Largest compressed artifact (KILN_MAX_ARTIFACT_BYTES). */
  maxBytes: number;
  /** Most compressed bytes of all the execution's artifacts (KILN_MAX_EXECUTION_ARTIFACT_BYTES). */
  maxExecutionBytes: number;
  /** What the owner may still store (KILN_OWNER_STORAGE_QUOTA), and the quota; null: no quota. */
  owner: { leftBytes: number; quotaBytes: number } | null;
  /** Kiln's own log lines (warnings about missing paths). */
  log: (message: string) => void;
  signal?: AbortSignal;
  /** Attempts per artifact when the store fails (default 3). */
  attempts?: number;
}

/** What was stored, and the error that stopped the collection (the run fails with it), if any. */
export interface CollectedArtifacts {
  records: ArtifactRecord[];
  error: ArtifactError | null;
}

/** The store key of the i-th artifact: readable, and unique whatever the path contains. */
export function artifactKey(executionId: string, index: number, artifactPath: string): string {
  const name = artifactPath.replace(/\/+$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100) || 'artifact';
  return `executions/${executionId}/artifacts/${index + 1}-${name}.tar.gz`;
}

/** The tightest of the three limits on the next artifact, and the error its excess makes. */
export function artifactLimit(
  artifactPath: string,
  storedBytes: number,
  opts: Pick<ArtifactOptions, 'maxBytes' | 'maxExecutionBytes' | 'owner'>,
): { bytes: number; error: () => ArtifactError } {
  const notStored = 'it and the artifacts after it are not stored';
  let bytes = opts.maxBytes;
  let error = () => new ArtifactError(`artifact "${artifactPath}" is larger than ${opts.maxBytes} bytes compressed (KILN_MAX_ARTIFACT_BYTES)`);
  const executionLeft = opts.maxExecutionBytes - storedBytes;
  if (executionLeft < bytes) {
    bytes = executionLeft;
    error = () =>
      new ArtifactError(
        `artifact "${artifactPath}" does not fit: the artifacts of one execution may take ${opts.maxExecutionBytes} bytes compressed (KILN_MAX_EXECUTION_ARTIFACT_BYTES); ${notStored}`,
      );
  }
  const owner = opts.owner;
  if (owner !== null && owner.leftBytes - storedBytes < bytes) {
    bytes = owner.leftBytes - storedBytes;
    error = () =>
      new ArtifactError(
        `artifact "${artifactPath}" does not fit in the owner's storage quota of ${owner.quotaBytes} bytes ` +
          `(KILN_OWNER_STORAGE_QUOTA, ${owner.quotaBytes - owner.leftBytes + storedBytes} bytes used); ${notStored}. Deleting jobs frees their artifacts`,
      );
  }
  return { bytes: Math.max(0, bytes), error };
}

/**
 * Copies each listed path out of the container (a file, or a directory with everything under
 * it) and stores it as one tar.gz. A path the build did not produce is a warning in the log,
 * not a failure, as in other CI systems. An artifact that cannot be stored (over a size limit or
 * the owner's quota, or the store still failing after retries) stops the collection: it and the
 * ones after it are not stored, and the execution fails with the error, since its output is lost.
 * Those stored before it are kept and returned.
 */
export async function collectArtifacts(
  backend: ContainerBackend,
  handle: ContainerHandle,
  store: ArtifactStore,
  paths: readonly string[],
  opts: ArtifactOptions,
): Promise<CollectedArtifacts> {
  const records: ArtifactRecord[] = [];
  let stored = 0;
  for (const [index, artifactPath] of paths.entries()) {
    opts.signal?.throwIfAborted();
    const limit = artifactLimit(artifactPath, stored, opts);
    // Nothing at all fits: not even the copy out of the container is started.
    if (limit.bytes === 0) return { records, error: limit.error() };
    const inContainer = path.posix.join(opts.workdir, artifactPath);
    const key = artifactKey(opts.executionId, index, artifactPath);
    const attempts = opts.attempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      const archive = await backend.copyOut(handle, inContainer);
      if (archive === null) {
        opts.log(`artifact "${artifactPath}": no such file or directory in ${opts.workdir}; skipped`);
        break;
      }
      const gz = gzipWithin(archive, limit.bytes);
      try {
        const { size } = await store.put(key, gz.stream, { contentType: 'application/gzip' });
        records.push({ path: artifactPath, size, key });
        stored += size;
        opts.log(`artifact "${artifactPath}" stored (${size} bytes, tar.gz)`);
        break;
      } catch (err) {
        archive.destroy();
        // Whichever side of the upload reported first, an oversize artifact is the job's fault.
        if (gz.exceeded()) {
          await store.delete(key).catch(() => undefined);
          return { records, error: limit.error() };
        }
        const reason = (err as Error).message;
        if (attempt >= attempts) {
          return { records, error: new ArtifactError(`artifact "${artifactPath}" could not be stored in ${store.description}: ${reason}`, { cause: err }) };
        }
        opts.log(`artifact "${artifactPath}": storing failed (${reason}); retrying`);
        await delay(1000 * 2 ** (attempt - 1), undefined, opts.signal ? { signal: opts.signal } : {});
      }
    }
  }
  return { records, error: null };
}

/** Gzips a tar stream, failing it once the result passes `maxBytes` (artifacts, and caches: src/runner/cache/). */
export function gzipWithin(archive: Readable, maxBytes: number): { stream: Readable; exceeded: () => boolean } {
  let size = 0;
  let exceeded = false;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size <= maxBytes) return done(null, chunk);
      exceeded = true;
      done(new Error(`larger than ${maxBytes} bytes`));
    },
  });
  // The limit may be passed before the store starts reading (a small quota, a slow mkdir): the
  // stream then ends errored, which the store's pipeline reports; it must not be an uncaught event.
  limit.on('error', () => undefined);
  const gzip = createGzip();
  archive.on('error', (err) => gzip.destroy(err));
  gzip.on('error', (err) => limit.destroy(err));
  return { stream: archive.pipe(gzip).pipe(limit), exceeded: () => exceeded };
}
