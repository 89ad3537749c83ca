import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import type pg from 'pg';
import { hasTextObject, logKeys, ndjsonToText } from '../../src/logs/archive.js';
import { archivedNdjsonOf } from '../../src/logs/logPacks.js';
import type { ArtifactStore } from '../../src/storage/ArtifactStore.js';

/**
 * An archived log's NDJSON as the store holds it: an object of its own (a big log), or its byte
 * range of a pack (a small one, docs/design.md#archives).
 */
export async function archivedNdjson(pool: pg.Pool, store: ArtifactStore, executionId: string): Promise<string> {
  const stream = await archivedNdjsonOf(pool, store, executionId);
  if (stream === null) throw new Error(`the log of execution ${executionId} is not archived`);
  return text(stream);
}

/**
 * An archived log's plain text as its download route serves it: a big log's own text object, a
 * small one's rendered from its NDJSON (docs/design.md#archives).
 */
export async function archivedText(pool: pg.Pool, store: ArtifactStore, executionId: string, lastSeq: number): Promise<string> {
  if (hasTextObject(lastSeq)) return (await store.get(logKeys(executionId).text)).toString('utf8');
  return text(Readable.from([await archivedNdjson(pool, store, executionId)]).pipe(ndjsonToText()));
}
