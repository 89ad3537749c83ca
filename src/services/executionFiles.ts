import type { Readable } from 'node:stream';
import type { Execution } from '../entities/index.js';
import { NotFoundError } from '../errors.js';
import { hasTextObject, logKeys } from '../logs/archive.js';
import { ObjectNotFoundError, type ArtifactStore } from '../storage/ArtifactStore.js';
import type { Deps } from './deps.js';

/**
 * The plain-text archived log's address: a big log's text object presigned on S3, else Kiln's own
 * download route (which renders a small log's text from its NDJSON).
 */
export async function logUrlOf(store: ArtifactStore, execution: Pick<Execution, 'id' | 'logKey' | 'lastSeq'>): Promise<string | null> {
  if (execution.logKey === null) return null;
  const presigned = hasTextObject(execution.lastSeq) ? await store.url(logKeys(execution.id).text) : null;
  return presigned ?? `/api/v1/executions/${execution.id}/log`;
}

/** The execution's stored artifacts with their download addresses. */
export async function artifactsOf(store: ArtifactStore, execution: Pick<Execution, 'id' | 'artifacts'>): Promise<Array<{ path: string; size: number; url: string | null }>> {
  return Promise.all(
    execution.artifacts.map(async (a) => ({
      path: a.path,
      size: a.size,
      url: (await store.url(a.key)) ?? `/api/v1/executions/${execution.id}/artifacts/${encodeURIComponent(a.path)}`,
    })),
  );
}

/** One stored artifact of an execution (a tar.gz) by the path the job file lists; NOT_FOUND when there is none. */
export async function openArtifact(deps: Deps, execution: Execution, artifactPath: string): Promise<{ stream: Readable; fileName: string }> {
  const artifact = execution.artifacts.find((a) => a.path === artifactPath);
  if (artifact === undefined) throw new NotFoundError(`artifact of execution ${execution.id}`, artifactPath);
  try {
    return { stream: await deps.store.getStream(artifact.key), fileName: artifact.key.split('/').pop()! };
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new NotFoundError(`artifact of execution ${execution.id}`, artifactPath);
    throw err;
  }
}
