import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import { globBase, globRegExp, parseKeyTemplate } from '../../jobfile/cache.js';
import type { ContainerBackend, ContainerHandle } from '../types.js';
import { readTar } from './tarEntries.js';

/** A cache key cannot be computed from the workspace (a glob that names no file): the run fails. */
export class CacheKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheKeyError';
  }
}

/** Where a key's template functions find their values. */
export interface KeyContext {
  backend: ContainerBackend;
  handle: ContainerHandle;
  workdir: string;
  /** `{{ job }}`: the job's id, so that two jobs of one owner share a cache only when their keys say so. */
  jobId: string;
  signal?: AbortSignal;
}

/**
 * The workspace's regular files matching `glob` (relative to the workspace), with the SHA-256 of
 * each. The files are read through the engine's archive API from the container, so a symlink is
 * an entry of its own and never followed (not out of the workspace, not anywhere); it matches nothing.
 */
async function hashesOf(ctx: KeyContext, glob: string): Promise<Map<string, string>> {
  const base = globBase(glob);
  const pattern = globRegExp(glob);
  const archive = await ctx.backend.copyOut(ctx.handle, posix.join(ctx.workdir, base));
  const hashes = new Map<string, Hash>();
  if (archive === null) return new Map();
  const onAbort = (): void => void archive.destroy(new Error('stopped'));
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  // The archive names entries after the last segment of what was copied: `go.sum`, `sub/...`, `workspace/...`.
  const toRelative = (entry: string): string => {
    const clean = entry.replace(/\/+$/, '');
    if (base === '') return clean.split('/').slice(1).join('/');
    return posix.join(posix.dirname(base), clean);
  };
  try {
    await readTar(archive, (entry) => {
      const relative = toRelative(entry.path);
      if (entry.type !== '0' || !pattern.test(relative)) return null;
      const hash = createHash('sha256');
      hashes.set(relative, hash);
      return (chunk) => void hash.update(chunk);
    });
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
  ctx.signal?.throwIfAborted();
  return new Map([...hashes].map(([file, hash]) => [file, hash.digest('hex')]));
}

/**
 * `hashFiles`: one SHA-256 over the path and content hash of every file the globs match, in path
 * order. Each glob must match at least one regular file: a key over a file that is not there would
 * silently be a constant.
 */
export async function hashFiles(ctx: KeyContext, globs: readonly string[]): Promise<string> {
  const all = new Map<string, string>();
  for (const glob of globs) {
    const found = await hashesOf(ctx, glob);
    if (found.size === 0) {
      throw new CacheKeyError(
        `cache key: hashFiles("${glob}") matches no regular file of ${ctx.workdir} (symlinks are not followed); check the checkout and the glob`,
      );
    }
    for (const [file, hex] of found) all.set(file, hex);
  }
  const total = createHash('sha256');
  for (const file of [...all.keys()].sort()) total.update(`${file}\0${all.get(file)}\n`);
  return total.digest('hex');
}

/** Renders a key template of the job file (checked by lint: parsing cannot fail here but for an old plan). */
export async function renderKey(template: string, ctx: KeyContext): Promise<string> {
  const parsed = parseKeyTemplate(template);
  if ('problem' in parsed) throw new CacheKeyError(`cache key "${template}": ${parsed.problem.message}`);
  let key = '';
  for (const part of parsed.parts) {
    if ('text' in part) key += part.text;
    else if (part.fn === 'os') key += 'linux';
    else if (part.fn === 'job') key += ctx.jobId;
    else key += await hashFiles(ctx, part.globs);
  }
  return key;
}
