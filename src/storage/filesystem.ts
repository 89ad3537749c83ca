import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { makePrivateDir, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../util/privateDir.js';
import { assertValidKey, assertValidPrefix, ObjectNotFoundError, type ArtifactStore, type ByteRange } from './ArtifactStore.js';

/** Owner only (docs/design.md#local-privacy): logs and artifacts are their tenant's, not the host's users'. */
const DIR = { recursive: true, mode: PRIVATE_DIR_MODE } as const;

/** How many recently made directories a store remembers. */
const MADE_DIRS_REMEMBERED = 1024;

/**
 * An ArtifactStore in a local directory: key `a/b.log` is the file `<dir>/a/b.log`.
 * Readers never see a partial object: each put writes a temporary file beside the target
 * and renames it into place. Files are 0600 and directories 0700, whatever the umask.
 */
export class FilesystemStore implements ArtifactStore {
  readonly description: string;
  private readonly root: string;
  /** Directories made (or found) by recent puts; a hint only: a put still copes with one removed since. */
  private readonly madeDirs = new Set<string>();

  constructor(dir: string) {
    this.root = path.resolve(dir);
    this.description = `file://${this.root}`;
  }

  async put(key: string, body: Buffer | string | Readable, _opts?: { contentType?: string }): Promise<{ key: string; size: number }> {
    const target = this.pathOf(key);
    // Dot-prefixed and random, so it cannot collide with a concurrent put of the same key.
    const temp = path.join(path.dirname(target), `.${path.basename(target)}.${randomUUID()}.tmp`);
    try {
      let size: number;
      if (typeof body === 'string' || body instanceof Uint8Array) {
        // A directory this store made lately is not made again (an execution's artifacts share
        // its log's); a new one is made first, not after a failed open.
        const dir = path.dirname(target);
        if (!this.madeDirs.has(dir)) await this.makeDir(dir);
        await writeFile(temp, body, { flag: 'wx', mode: PRIVATE_FILE_MODE }).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          await this.makeDir(dir); // removed meanwhile (a deletion of the execution's files)
          await writeFile(temp, body, { flag: 'wx', mode: PRIVATE_FILE_MODE });
        });
        size = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
      } else {
        await mkdir(path.dirname(target), DIR);
        await pipeline(body, createWriteStream(temp, { flags: 'wx', mode: PRIVATE_FILE_MODE }));
        size = (await stat(temp)).size;
      }
      await rename(temp, target);
      return { key, size };
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(key));
    } catch (err) {
      throw notFoundOr(err, key);
    }
  }

  async getStream(key: string, range?: ByteRange): Promise<Readable> {
    // Opening first turns a missing file into ObjectNotFoundError here, not as a stream error later.
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.pathOf(key), 'r');
      if (!(await handle.stat()).isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    } catch (err) {
      await handle?.close();
      throw notFoundOr(err, key);
    }
    return handle.createReadStream(range === undefined ? {} : { start: range.start, end: range.start + range.length - 1 });
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.pathOf(key));
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    assertValidPrefix(prefix);
    await rm(path.join(this.root, ...prefix.slice(0, -1).split('/')), { recursive: true, force: true });
  }

  async url(key: string, _expiresInSec?: number): Promise<string | null> {
    assertValidKey(key);
    return null;
  }

  /**
   * Creates the directory if needed (private: one made 0755 by an older Kiln is made 0700, which
   * hides the 0644 files it wrote) and proves it writable by writing a probe file.
   */
  async check(): Promise<void> {
    await makePrivateDir(this.root);
    const probe = path.join(this.root, `.kiln-check-${randomUUID()}`);
    try {
      await writeFile(probe, '', { flag: 'wx' });
    } catch (err) {
      throw new Error(`artifact directory ${this.root} is not writable: ${(err as Error).message}`);
    }
    await rm(probe, { force: true });
  }

  private async makeDir(dir: string): Promise<void> {
    // One mkdir when the parent exists (the usual case: a new execution's folder); recursive only when it does not.
    await mkdir(dir, { mode: PRIVATE_DIR_MODE }).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') await mkdir(dir, DIR);
      else if (err.code !== 'EEXIST') throw err;
    });
    if (this.madeDirs.size >= MADE_DIRS_REMEMBERED) this.madeDirs.clear();
    this.madeDirs.add(dir);
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    return path.join(this.root, ...key.split('/'));
  }
}

/** ENOENT, or a key that names a directory or passes through a file: no such object. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

function notFoundOr(err: unknown, key: string): unknown {
  return isMissing(err) ? new ObjectNotFoundError(key) : err;
}
