import type { Execution } from '../entities/index.js';
import { logKeys } from '../logs/archive.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';

/** The plain-text archived log's address: presigned on S3, else Kiln's own download route. */
export async function logUrlOf(store: ArtifactStore, execution: Execution): Promise<string | null> {
  if (execution.logKey === null) return null;
  return (await store.url(logKeys(execution.id).text)) ?? `/api/v1/executions/${execution.id}/log`;
}

/** The execution's stored artifacts with their download addresses. */
export async function artifactsOf(store: ArtifactStore, execution: Execution): Promise<Array<{ path: string; size: number; url: string | null }>> {
  return Promise.all(
    execution.artifacts.map(async (a) => ({
      path: a.path,
      size: a.size,
      url: (await store.url(a.key)) ?? `/api/v1/executions/${execution.id}/artifacts/${encodeURIComponent(a.path)}`,
    })),
  );
}
