import type pg from 'pg';
import { LogStream } from '../../src/entities/enums.js';
import { LogWriter } from '../../src/logs/LogWriter.js';

/**
 * Plays a worker's part on an execution without Docker, through the same writes the runner
 * makes: status updates on `executions` / `execution_steps` and log lines through the real
 * LogWriter. For tests of the live path (events, replay) that must control timing exactly.
 */
export class LiveRun {
  readonly log: LogWriter;

  constructor(
    private readonly pool: pg.Pool,
    readonly executionId: string,
    opts: { flushMs?: number; maxBatch?: number } = {},
  ) {
    this.log = new LogWriter(pool, executionId, 0, opts);
  }

  async start(): Promise<void> {
    await this.pool.query(`update executions set status = 'RUNNING', started_at = now() where id = $1`, [this.executionId]);
  }

  async step(index: number, status: 'RUNNING' | 'SUCCEEDED' | 'FAILED', exitCode: number | null = null): Promise<void> {
    await this.pool.query(`update execution_steps set status = $3, exit_code = $4 where execution_id = $1 and index = $2`, [this.executionId, index, status, exitCode]);
  }

  /** Appends `count` STDOUT lines `line <n>` (numbered from `from`) to step 0. */
  lines(from: number, count: number): void {
    for (let i = 0; i < count; i++) this.log.append(LogStream.STDOUT, 0, `line ${from + i}`);
  }

  /** Flushes the log, then records the outcome and skips unreached steps in one transaction. */
  async finish(status: 'SUCCEEDED' | 'FAILED' = 'SUCCEEDED'): Promise<void> {
    await this.log.flush();
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query(`update executions set status = $2, exit_code = $3, finished_at = now() where id = $1`, [this.executionId, status, status === 'SUCCEEDED' ? 0 : 1]);
      await client.query(`update execution_steps set status = 'SKIPPED' where execution_id = $1 and status = 'PENDING'`, [this.executionId]);
      await client.query('commit');
    } finally {
      client.release();
    }
  }
}
