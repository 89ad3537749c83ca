import type { Sql } from '../util/sql.js';

/** The job's executions that are QUEUED or RUNNING (read inside the caller's transaction). */
export async function activeExecutions(sql: Sql, jobIds: string[]): Promise<Map<string, { running: string[]; queued: string[] }>> {
  const rows = await sql<{ id: string; job_id: string; status: string }>(
    `select id, job_id, status from executions where job_id = any($1::uuid[]) and status in ('QUEUED', 'RUNNING') order by created_at`,
    [jobIds],
  );
  const out = new Map<string, { running: string[]; queued: string[] }>();
  for (const id of jobIds) out.set(id, { running: [], queued: [] });
  for (const r of rows) out.get(r.job_id)![r.status === 'RUNNING' ? 'running' : 'queued'].push(r.id);
  return out;
}
