import { PassThrough, Readable } from 'node:stream';
import type { ArtifactStore } from '../../storage/ArtifactStore.js';
import { gzipWithin } from '../artifacts.js';
import type { ContainerBackend, ContainerHandle } from '../types.js';

/** Where a restored archive is copied before the container unpacks it (a writable volume). */
const RESTORE_FILE = '/tmp/.kiln-cache-restore.tar.gz';
/** Most bytes of a tar command's error output kept for the log. */
const MAX_ERROR_TEXT = 2000;

/** A cache could not be saved or restored; the run goes on (a cache is an optimisation). */
export class CacheArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheArchiveError';
  }
}

/** `text` as one word of `sh`, whatever it holds. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that writes one tar of the paths that exist, relative to `/`, to its output. It runs
 * in the job's container (its user, limits and view of the filesystem): Kiln never reads the paths
 * from the host side, so no symlink of the job's can point it anywhere. Exit 3: no path exists.
 */
export function packCommand(paths: readonly string[]): string {
  const words = paths.map((p) => shellQuote(p.replace(/^\/+/, ''))).join(' ');
  // Read-only directories (Go's module cache) are made writable by their owner first: the
  // container's tar unpacks a directory's mode before its files, and the steps' user, root or
  // not, holds no capability to write past it. The run is over; nothing else sees the change.
  return (
    `set --; for p in ${words}; do if [ -e "/$p" ] || [ -L "/$p" ]; then set -- "$@" "$p"; fi; done; [ $# -gt 0 ] || exit 3; ` +
    `(cd / && chmod -R u+w "$@" 2>/dev/null); exec tar -cf - -C / "$@"`
  );
}

/** The command that removes what a failed restore left of `paths` (homes only: the workspace holds the checkout). */
export function clearCommand(paths: readonly string[]): string | null {
  const homes = paths.filter((p) => !p.startsWith('/workspace'));
  return homes.length === 0 ? null : `rm -rf ${homes.map(shellQuote).join(' ')}`;
}

/** Resolves once `stream` takes writes again, or is closed. */
function drained(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed) return resolve();
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/** Outcome of saving: stored with its compressed size, or nothing to save. */
export type SavedArchive = { size: number } | { empty: true };

/**
 * Packs `paths` in the container and stores them gzipped under `key`. Fails (and stores nothing)
 * past `maxBytes` compressed, or when tar fails.
 */
export async function saveArchive(
  backend: ContainerBackend,
  handle: ContainerHandle,
  store: ArtifactStore,
  opts: { key: string; paths: readonly string[]; workdir: string; maxBytes: number; signal?: AbortSignal },
): Promise<SavedArchive> {
  const tar = new PassThrough();
  const gz = gzipWithin(tar, opts.maxBytes);
  const stored = store.put(opts.key, gz.stream, { contentType: 'application/gzip' });
  // A put that fails (the store, or past maxBytes) stops taking the output: the rest of tar's is
  // dropped, so the exec ends instead of waiting on a stream nobody reads. Read again below.
  stored.catch((err: Error) => tar.destroy(err));
  let errors = '';
  let drain: Promise<void> | null = null;
  let exitCode: number;
  try {
    ({ exitCode } = await backend.exec(
      handle,
      { command: packCommand(opts.paths), env: {}, workdir: opts.workdir },
      async (stream, data) => {
        if (stream === 'STDERR') {
          if (errors.length < MAX_ERROR_TEXT) errors += data.toString('utf8').slice(0, MAX_ERROR_TEXT - errors.length);
          return;
        }
        if (tar.destroyed) return;
        // The engine's stream may deliver again before a wait ends: one wait, shared.
        if (!tar.write(data)) {
          drain ??= drained(tar).finally(() => {
            drain = null;
          });
          await drain;
        }
      },
      opts.signal,
    ));
  } catch (err) {
    tar.destroy(err as Error);
    await stored.catch(() => undefined);
    await store.delete(opts.key).catch(() => undefined);
    throw err;
  }
  if (exitCode !== 0) {
    tar.destroy(new Error(`tar exited with ${exitCode}`));
    await stored.catch(() => undefined);
    await store.delete(opts.key).catch(() => undefined);
    if (exitCode === 3) return { empty: true };
    throw new CacheArchiveError(`tar in the container exited with code ${exitCode}${errors.trim() ? `: ${errors.trim()}` : ''}`);
  }
  if (!tar.destroyed) tar.end();
  try {
    return { size: (await stored).size };
  } catch (err) {
    await store.delete(opts.key).catch(() => undefined);
    if (gz.exceeded()) {
      throw new CacheArchiveError(
        `the cache is larger than ${opts.maxBytes} bytes compressed, the room the owner's caches have (KILN_CACHE_MAX_BYTES, less what artifacts take of KILN_OWNER_STORAGE_QUOTA)`,
      );
    }
    throw err;
  }
}

/** A ustar header for one regular file of `size` bytes named `name`, readable only by its owner. */
function fileHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000600\0', 100, 'ascii');
  header.write('0000000\0', 108, 'ascii');
  header.write('0000000\0', 116, 'ascii');
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  header.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136, 'ascii');
  header.write('        ', 148, 'ascii');
  header.write('0', 156, 'ascii');
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return header;
}

/**
 * Unpacks the stored archive `key` (of `size` bytes) into the container: copied in as one file of
 * its /tmp, then unpacked there by the container's own tar, as the steps' user and within the
 * writable directories' size caps, and removed. When unpacking fails, what it left in the homes
 * is removed (a half-restored module cache breaks a build; an empty one only slows it).
 */
export async function restoreArchive(
  backend: ContainerBackend,
  handle: ContainerHandle,
  store: ArtifactStore,
  opts: { key: string; size: number; paths: readonly string[]; workdir: string; signal?: AbortSignal },
): Promise<void> {
  const body = await store.getStream(opts.key);
  const name = RESTORE_FILE.slice('/tmp/'.length);
  const padding = Buffer.alloc((512 - (opts.size % 512)) % 512 + 1024);
  async function* wrapped(): AsyncGenerator<Buffer> {
    yield fileHeader(name, opts.size);
    let seen = 0;
    for await (const chunk of body) {
      seen += (chunk as Buffer).length;
      if (seen > opts.size) throw new CacheArchiveError(`the stored cache is larger than its recorded ${opts.size} bytes`);
      yield chunk as Buffer;
    }
    if (seen !== opts.size) throw new CacheArchiveError(`the stored cache has ${seen} bytes, ${opts.size} recorded`);
    yield padding;
  }
  await backend.copyIn(handle, '/tmp', Readable.from(wrapped()));
  let errors = '';
  const { exitCode } = await backend.exec(
    handle,
    { command: `tar -xzf ${RESTORE_FILE} -C /; rc=$?; rm -f ${RESTORE_FILE}; [ $rc -eq 0 ] || ${clearCommand(opts.paths) ?? 'true'}; exit $rc`, env: {}, workdir: opts.workdir },
    (_stream, data) => {
      if (errors.length < MAX_ERROR_TEXT) errors += data.toString('utf8').slice(0, MAX_ERROR_TEXT - errors.length);
    },
    opts.signal,
  );
  if (exitCode !== 0) throw new CacheArchiveError(`tar in the container exited with code ${exitCode}${errors.trim() ? `: ${errors.trim()}` : ''}`);
}
