import type { Readable } from 'node:stream';

/**
 * Where archived logs and artifacts live: S3 (any S3-compatible endpoint) in production,
 * a local directory by default. Keys are `/`-separated relative paths with no `..`.
 */
export interface ArtifactStore {
  /** Stores a whole object, replacing any previous one. Streams are uploaded in parts. */
  put(key: string, body: Buffer | string | Readable, opts?: { contentType?: string }): Promise<{ key: string; size: number }>;
  /** Reads a whole object; throws ObjectNotFoundError when absent. */
  get(key: string): Promise<Buffer>;
  /**
   * Reads an object as a stream, or only `range` of its bytes (a log inside a pack); throws
   * ObjectNotFoundError when absent.
   */
  getStream(key: string, range?: ByteRange): Promise<Readable>;
  exists(key: string): Promise<boolean>;
  /** Removes an object; no error when absent. */
  delete(key: string): Promise<void>;
  /**
   * Removes every object whose key starts with `prefix`, a key ending in `/` (assertValidPrefix):
   * everything of one execution, say. No error when there is none.
   */
  deletePrefix(prefix: string): Promise<void>;
  /**
   * A URL a client can fetch directly (a presigned GET for S3), or null when the store has
   * no such address (the local store: Kiln serves those objects itself).
   */
  url(key: string, expiresInSec?: number): Promise<string | null>;
  /** Throws when the store cannot be reached (readiness). */
  check(): Promise<void>;
  /** A short description for logs, e.g. `s3://bucket` or `file:///var/kiln/artifacts`. */
  readonly description: string;
}

/** `length` bytes from byte `start` (0-based) of an object; `length` is at least 1. */
export interface ByteRange {
  start: number;
  length: number;
}

export class ObjectNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
    this.name = 'ObjectNotFoundError';
  }
}

/**
 * Throws unless `key` is a store key: relative, `/`-separated, no empty, `.` or `..`
 * segment, no backslash or control character, at most 1024 bytes (the S3 limit). Every
 * store applies the same rule so that a key valid on one is valid on the other.
 */
export function assertValidKey(key: string): void {
  const reason = invalidKeyReason(key);
  if (reason) throw new Error(`invalid artifact key ${JSON.stringify(key)}: ${reason}`);
}

/** Throws unless `prefix` is a valid key followed by `/`: a folder of keys, never part of a name. */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== 'string' || !prefix.endsWith('/')) throw new Error(`invalid key prefix ${JSON.stringify(prefix)}: must end with "/"`);
  assertValidKey(prefix.slice(0, -1));
}

function invalidKeyReason(key: string): string | null {
  if (typeof key !== 'string' || key.length === 0) return 'empty';
  if (Buffer.byteLength(key) > 1024) return 'longer than 1024 bytes';
  if (key.startsWith('/')) return 'absolute';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\\\u0000-\u001f\u007f]/.test(key)) return 'contains a backslash or control character';
  for (const segment of key.split('/')) {
    if (segment === '') return 'empty path segment';
    if (segment === '.' || segment === '..') return `"${segment}" segment`;
  }
  return null;
}
