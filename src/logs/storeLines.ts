import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { COPY_LOG_LINES_SQL, uuidBytes } from './copyBinary.js';
import type { LogChunkFields } from '../entities/LogChunk.js';

/** The claim a writer holds: lines are stored only while the execution is RUNNING under it. */
export interface LogFence {
  attempt: number;
  workerId: string;
}

/**
 * How a batch is stored: both ways answer whether it was (false: the fence refused it, nothing
 * was written), and keep the same invariants. The execution's row is locked (`for no key update`)
 * before any line is inserted, so a hand-back holding it (which adds its own line at
 * last_seq + 1) is waited for, and then the claim no longer matches; inserting first and waiting
 * for the row at the update would deadlock with it. The lines and `executions.last_seq` (the
 * batch's highest seq) commit together, so last_seq always equals the highest stored seq.
 */
/**
 * The fence as a condition on `executions` (alias-free), its parameters numbered from `first`.
 * Without a fence the row only has to exist.
 */
function fenceCondition(first: number): string {
  return `($${first}::int is null or (attempt = $${first} and worker_id = $${first + 1} and status = 'RUNNING'))`;
}

/**
 * One statement: lock the row under the fence, insert the lines from arrays, move last_seq. One
 * round trip, so it is the way for the small batches of a live, slow producer.
 */
export function insertLines(pool: pg.Pool, executionId: string, fence: LogFence | null): (batch: readonly LogChunkFields[]) => Promise<boolean> {
  return async (batch) => {
    const result = await pool.query(
      `with allowed as (
         select 1 from executions where id = $1 and ${fenceCondition(7)} for no key update
       ), inserted as (
         insert into log_chunks (execution_id, seq, stream, step, text, at)
         select $1, s, st, sp, tx, a
           from unnest($2::int[], $3::text[], $4::int[], $5::text[], $6::timestamptz[]) as u(s, st, sp, tx, a)
          where exists (select 1 from allowed)
         returning seq
       )
       update executions set last_seq = (select max(seq) from inserted) where id = $1 and exists (select 1 from inserted)`,
      [
        executionId,
        batch.map((l) => l.seq),
        batch.map((l) => l.stream),
        batch.map((l) => l.step),
        batch.map((l) => l.text),
        batch.map((l) => l.at.toISOString()),
        fence?.attempt ?? null,
        fence?.workerId ?? null,
      ],
    );
    // The update matches a row only when the batch was inserted (the fence allowed it).
    return (result.rowCount ?? 0) > 0;
  };
}

/**
 * A transaction on one connection in three round trips: `begin` and the move of last_seq to the
 * batch's highest seq under the fence (which locks the row) in one simple query, then the binary
 * COPY of the lines (`data`, see CopyEncoder) with the `commit` after it in the same query string
 * (Postgres runs it once the COPY data has ended; an error skips it). The server neither parses
 * arrays nor timestamps: the way for big batches. The row is locked before the COPY and until the
 * commit, so the fence means exactly what it means for insertLines, and last_seq moves only if
 * the lines are stored with it. Round trips count double on a busy machine, where each one waits
 * for both processes to be scheduled.
 */
export function copyLines(pool: pg.Pool, executionId: string, fence: LogFence | null): (lastSeq: number, data: readonly Buffer[]) => Promise<boolean> {
  uuidBytes(executionId); // throws unless a UUID: it is written into the statement below
  return async (lastSeq, data) => {
    const client = await pool.connect();
    let clean = false;
    try {
      // A simple query takes no parameters: the values are written in, ints checked, the worker id quoted.
      if (!Number.isSafeInteger(lastSeq) || (fence && !Number.isSafeInteger(fence.attempt))) throw new Error('copyLines: seqs and attempts are integers');
      const condition = fence ? `attempt = ${fence.attempt} and worker_id = ${client.escapeLiteral(fence.workerId)} and status = 'RUNNING'` : 'true';
      const results = (await client.query(
        `begin; update executions set last_seq = ${lastSeq} where id = '${executionId}' and ${condition}`,
      )) as unknown as pg.QueryResult[];
      if (results[1]!.rowCount === 0) {
        await client.query('rollback');
        clean = true;
        return false;
      }
      await copyInto(client, data);
      clean = true;
      return true;
    } finally {
      // A connection left mid-transaction (an error anywhere above) is closed, which rolls back.
      client.release(clean ? undefined : true);
    }
  };
}

/**
 * Sends one binary COPY stream, given as consecutive parts (COPY data need not break at rows),
 * and commits; resolves once Postgres has taken all of it and committed, so the parts may be
 * reused then.
 */
function copyInto(client: pg.PoolClient, data: readonly Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = client.query(copyFrom(`${COPY_LOG_LINES_SQL}; commit`));
    stream.once('finish', resolve);
    stream.once('error', reject);
    for (const part of data) stream.write(part);
    stream.end();
  });
}
