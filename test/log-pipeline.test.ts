import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogStream } from '../src/entities/enums.js';
import type { LogChunkFields } from '../src/entities/LogChunk.js';
import { LogWriter } from '../src/logs/LogWriter.js';
import { MASK, SecretMasker } from '../src/logs/mask.js';
import { OutputBudget, StepOutput } from '../src/logs/stepOutput.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

/** The log pipeline on a real Postgres: an API-only Kiln provides an execution row to write to. */
describe('the log pipeline', () => {
  let k: TestKiln;
  let pool: pg.Pool;
  let token: string;
  let n = 0;

  /** A fresh queued execution (no worker runs it). */
  async function newExecution(): Promise<string> {
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: `jobs:\n  - name: Log${++n}\n    steps:\n      - run: "true"\n` }, token);
    return res.data!.submitJob.jobs[0].lastExecution.id;
  }

  async function stored(executionId: string): Promise<Array<{ seq: number; stream: string; step: number | null; text: string }>> {
    const { rows } = await pool.query(`select seq, stream, step, text from log_chunks where execution_id = $1 order by seq`, [executionId]);
    return rows;
  }

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    pool = new pg.Pool({ connectionString: k.databaseUrl, max: 4 });
    token = await k.token('logger');
  });

  afterAll(async () => {
    await pool?.end();
    await k?.stop();
  });

  describe('LogWriter', () => {
    it('numbers lines without gaps and writes a fast producer in a few big batches', async () => {
      const id = await newExecution();
      const batches: Array<readonly LogChunkFields[]> = [];
      const log = new LogWriter(pool, id, 0, { onFlush: (b) => batches.push(b) });
      for (let i = 1; i <= 20_000; i++) log.append(LogStream.STDOUT, 0, `line ${i}`);
      await log.flush();
      const rows = await stored(id);
      expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
      expect(rows.at(-1)).toMatchObject({ seq: 20_000, text: 'line 20000' });
      expect(batches.length).toBeLessThanOrEqual(8);
      expect(batches.flat().map((l) => l.seq)).toEqual(rows.map((r) => r.seq));
      const { rows: [e] } = await pool.query(`select last_seq from executions where id = $1`, [id]);
      expect(e.last_seq).toBe(20_000);
    });

    it('asks the producer to wait while much is unwritten, and lets it go on once written', async () => {
      const id = await newExecution();
      const log = new LogWriter(pool, id, 0);
      const kilobyte = 'k'.repeat(1024);
      expect(log.backpressure()).toBeUndefined();
      for (let i = 0; i < 12_000; i++) log.append(LogStream.STDOUT, 0, kilobyte);
      const wait = log.backpressure();
      expect(wait).toBeInstanceOf(Promise);
      await wait;
      expect(log.backpressure()).toBeUndefined();
      await log.flush();
      expect((await stored(id)).length).toBe(12_000);
    });

    it('masks its own SYSTEM lines with the given mask', async () => {
      const id = await newExecution();
      const masker = SecretMasker.of(['hunter2-secret'])!;
      const log = new LogWriter(pool, id, 0, { mask: (t) => masker.line(t) });
      log.system('error: login failed for hunter2-secret');
      await log.flush();
      expect((await stored(id)).map((r) => r.text)).toEqual([`error: login failed for ${MASK}`]);
    });
  });

  describe('StepOutput', () => {
    it('masks, splits into lines per stream and stores them under the step', async () => {
      const id = await newExecution();
      const log = new LogWriter(pool, id, 0);
      const output = new StepOutput(log, 2, SecretMasker.of(['s3cr3t-value']), new OutputBudget(null));
      output.push('STDOUT', Buffer.from('one\nthe s3cr'));
      output.push('STDERR', Buffer.from('warn'));
      output.push('STDOUT', Buffer.from('3t-value here\ntwo'));
      output.push('STDERR', Buffer.from('ing\n'));
      output.end();
      await log.flush();
      expect(await stored(id)).toEqual([
        { seq: 1, stream: 'STDOUT', step: 2, text: 'one' },
        { seq: 2, stream: 'STDOUT', step: 2, text: `the ${MASK} here` },
        { seq: 3, stream: 'STDERR', step: 2, text: 'warning' },
        { seq: 4, stream: 'STDOUT', step: 2, text: 'two' },
      ]);
    });

    it('stops storing at the byte budget shared by the steps, and says so once', async () => {
      const id = await newExecution();
      const log = new LogWriter(pool, id, 0);
      const budget = new OutputBudget(25);
      const first = new StepOutput(log, 0, null, budget);
      first.push('STDOUT', Buffer.from('0123456789\n0123456789\n'));
      first.end();
      const second = new StepOutput(log, 1, null, budget);
      second.push('STDOUT', Buffer.from('abcdefgh\n'));
      second.push('STDOUT', Buffer.from('more and more\n'));
      second.end();
      await log.flush();
      const rows = await stored(id);
      expect(rows.map((r) => [r.stream, r.step, r.text])).toEqual([
        ['STDOUT', 0, '0123456789'],
        ['STDOUT', 0, '0123456789'],
        ['STDOUT', 1, 'abc'],
        ['SYSTEM', 1, "output truncated: this execution's log reached its limit of 25 bytes (KILN_MAX_LOG_BYTES); the rest of its output is discarded"],
      ]);
      expect(budget.truncated).toBe(true);
    });
  });
});
