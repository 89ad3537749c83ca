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
  /** Largest compressed artifact. */
  maxBytes: number;
  /** Kiln's own log lines (warnings about missing paths). */
  log: (message: string) => void;
  signal?: AbortSignal;
  /** Attempts per artifact when the store fails (default 3). */
  attempts?: number;
}

/** The store key of the i-th artifact: readable, and unique whatever the path contains. */
export function artifactKey(executionId: string, index: number, artifactPath: string): string {
  const name = artifactPath.replace(/\/+$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100) || 'artifact';
  return `executions/${executionId}/artifacts/${index + 1}-${name}.tar.gz`;
}

/**
 * Copies each listed path out of the container (a file, or a directory with everything under
 * it) and stores it as one tar.gz. A path the build did not produce is a warning in the log,
 * not a failure, as in other CI systems; an artifact that cannot be stored (over the size limit,
 * or the store still failing after retries) fails the execution, since its output is lost.
 */
export async function collectArtifacts(
  backend: ContainerBackend,
  handle: ContainerHandle,
  store: ArtifactStore,
  paths: readonly string[],
  opts: ArtifactOptions,
): Promise<ArtifactRecord[]> {
  const records: ArtifactRecord[] = [];
  for (const [index, artifactPath] of paths.entries()) {
    opts.signal?.throwIfAborted();
    const inContainer = path.posix.join(opts.workdir, artifactPath);
    const key = artifactKey(opts.executionId, index, artifactPath);
    const attempts = opts.attempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      const archive = await backend.copyOut(handle, inContainer);
      if (archive === null) {
        opts.log(`artifact "${artifactPath}": no such file or directory in ${opts.workdir}; skipped`);
        break;
      }
      const gz = gzipWithin(archive, opts.maxBytes);
      try {
        const { size } = await store.put(key, gz.stream, { contentType: 'application/gzip' });
        records.push({ path: artifactPath, size, key });
        opts.log(`artifact "${artifactPath}" stored (${size} bytes, tar.gz)`);
        break;
      } catch (err) {
        archive.destroy();
        // Whichever side of the upload reported first, an oversize artifact is the job's fault.
        if (gz.exceeded()) {
          await store.delete(key).catch(() => undefined);
          throw new ArtifactError(`artifact "${artifactPath}" is larger than ${opts.maxBytes} bytes compressed (KILN_MAX_ARTIFACT_BYTES)`);
        }
        const reason = (err as Error).message;
        if (attempt >= attempts) throw new ArtifactError(`artifact "${artifactPath}" could not be stored in ${store.description}: ${reason}`, { cause: err });
        opts.log(`artifact "${artifactPath}": storing failed (${reason}); retrying`);
        await delay(1000 * 2 ** (attempt - 1), undefined, opts.signal ? { signal: opts.signal } : {});
      }
    }
  }
  return records;
}

/** Gzips a tar stream, failing it once the result passes `maxBytes`. */
function gzipWithin(archive: Readable, maxBytes: number): { stream: Readable; exceeded: () => boolean } {
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
  const gzip = createGzip();
  archive.on('error', (err) => gzip.destroy(err));
  gzip.on('error', (err) => limit.destroy(err));
  return { stream: archive.pipe(gzip).pipe(limit), exceeded: () => exceeded };
}
