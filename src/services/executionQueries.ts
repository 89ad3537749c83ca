import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, ExecutionStatus, ExecutionStep, LogChunk } from '../entities/index.js';
import { ValidationError } from '../errors.js';
import { decodeCursor, isUuid, pageSize, toPage, type Page } from './paging.js';

export interface ExecutionFilter {
  jobId?: string | null;
  status?: ExecutionStatus | null;
  first?: number | null;
  after?: string | null;
}

/**
 * The owner's executions, newest first, keyset-paginated on (created_at, id) so pages neither
 * skip nor repeat rows while new executions arrive.
 */
export async function listExecutions(em: EntityManager, owner: string, filter: ExecutionFilter): Promise<Page<Execution>> {
  const size = pageSize(filter.first);
  const where: Record<string, unknown> = { owner };
  if (filter.jobId !== undefined && filter.jobId !== null) {
    if (!isUuid(filter.jobId)) return { items: [], hasNextPage: false, endCursor: null };
    where.job = filter.jobId;
  }
  if (filter.status) where.status = filter.status;
  if (filter.after) {
    const [at, id] = decodeCursor(filter.after, ['string', 'string']) as [string, string];
    const ts = new Date(at);
    if (Number.isNaN(ts.getTime()) || !isUuid(id)) throw new ValidationError('invalid cursor');
    where.$or = [{ createdAt: { $lt: ts } }, { createdAt: ts, id: { $lt: id } }];
  }
  const rows = await em.find(Execution, where, { orderBy: { createdAt: 'desc', id: 'desc' }, limit: size + 1 });
  return toPage(rows, size, (e) => [e.createdAt.toISOString(), e.id]);
}

export async function stepsOf(em: EntityManager, executionId: string): Promise<ExecutionStep[]> {
  return em.find(ExecutionStep, { execution: executionId }, { orderBy: { index: 'asc' } });
}

export const DEFAULT_LOG_LIMIT = 1000;
export const MAX_LOG_LIMIT = 10_000;

/** Log lines with seq > afterSeq, in order, at most `limit`. */
export async function logsOf(em: EntityManager, executionId: string, afterSeq = 0, limit = DEFAULT_LOG_LIMIT): Promise<LogChunk[]> {
  if (!Number.isInteger(afterSeq) || afterSeq < 0) throw new ValidationError('afterSeq must be a non-negative integer');
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LOG_LIMIT) throw new ValidationError(`limit must be between 1 and ${MAX_LOG_LIMIT}`);
  return em.find(LogChunk, { executionId, seq: { $gt: afterSeq } }, { orderBy: { seq: 'asc' }, limit });
}
