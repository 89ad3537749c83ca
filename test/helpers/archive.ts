import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { hasTextObject, logKeys, ndjsonToText } from '../../src/logs/archive.js';
import type { ArtifactStore } from '../../src/storage/ArtifactStore.js';

/**
 * An archived log's plain text as its download route serves it: a big log's own text object, a
 * small one's rendered from its NDJSON (docs/design.md#archives).
 */
export async function archivedText(store: ArtifactStore, executionId: string, lastSeq: number): Promise<string> {
  const keys = logKeys(executionId);
  if (hasTextObject(lastSeq)) return (await store.get(keys.text)).toString('utf8');
  return text(Readable.from([await store.get(keys.ndjson)]).pipe(ndjsonToText()));
}
