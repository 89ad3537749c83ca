import type pg from 'pg';

export interface TickRow {
  fire_time: Date;
  outcome: string;
  catch_up: boolean;
  execution_id: string | null;
}

/** A job's ledger in fire-time order. */
export async function ticksOf(pool: pg.Pool, jobId: string): Promise<TickRow[]> {
  const { rows } = await pool.query<TickRow>(`select fire_time, outcome, catch_up, execution_id from ticks where job_id = $1 order by fire_time`, [jobId]);
  return rows;
}

/**
 * The audit behind "never two at once": pairs of executions of one job whose
 * [started_at, finished_at] intervals overlap (a running one counts as open-ended).
 */
export async function overlappingPairs(pool: pg.Pool, jobId: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `select count(*)::int as n from executions a join executions b on a.job_id = b.job_id and a.id < b.id
      where a.job_id = $1 and a.started_at is not null and b.started_at is not null
        and a.started_at < coalesce(b.finished_at, 'infinity') and b.started_at < coalesce(a.finished_at, 'infinity')`,
    [jobId],
  );
  return rows[0]!.n;
}

/** Asserts-free helper: the gaps (in ms) between consecutive fire times. */
export function gaps(ticks: TickRow[]): number[] {
  return ticks.slice(1).map((t, i) => new Date(t.fire_time).getTime() - new Date(ticks[i]!.fire_time).getTime());
}

export async function submit(gql: (q: string, v: Record<string, unknown>, t: string) => Promise<any>, token: string, yaml: string): Promise<string[]> {
  const res = await gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: yaml }, token);
  if (res.errors) throw new Error(JSON.stringify(res.errors));
  return res.data.submitJob.jobs.map((j: { id: string }) => j.id);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
