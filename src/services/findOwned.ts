import type { EntityManager } from '@mikro-orm/postgresql';
import { Execution, Job } from '../entities/index.js';
import { NotFoundError } from '../errors.js';
import { isUuid } from './paging.js';

/** The owner's job, or null: another owner's job is indistinguishable from none. */
export async function findJob(em: EntityManager, owner: string, id: string): Promise<Job | null> {
  if (!isUuid(id)) return null;
  return em.findOne(Job, { id, owner });
}

export async function getJob(em: EntityManager, owner: string, id: string): Promise<Job> {
  const job = await findJob(em, owner, id);
  if (job === null) throw new NotFoundError('job', id);
  return job;
}

export async function findExecution(em: EntityManager, owner: string, id: string): Promise<Execution | null> {
  if (!isUuid(id)) return null;
  return em.findOne(Execution, { id, owner });
}

export async function getExecution(em: EntityManager, owner: string, id: string): Promise<Execution> {
  const execution = await findExecution(em, owner, id);
  if (execution === null) throw new NotFoundError('execution', id);
  return execution;
}
