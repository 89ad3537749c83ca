import { afterAll, describe, expect, it } from 'vitest';
import { LogWriter } from '../src/logs/LogWriter.js';
import { sqlOfPg } from '../src/util/sql.js';
import { InfrastructureError } from '../src/runner/infrastructure.js';
import { NoopBackend } from '../src/runner/noop.js';
import type { ContainerHandle, ContainerConfig, ContainerSummary, OutputSink, StepCommand, StepResult } from '../src/runner/types.js';
import { claimExecution } from '../src/executions/claim.js';
import { requeueAsNextAttempt } from '../src/executions/handBack.js';
import { requeueExpired } from '../src/executions/requeueExpired.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submitJob } from './helpers/runner.js';

/**
 * A fake engine that keeps track of which containers exist. A step whose command contains `infra`
 * breaks (once, on attempt 1) as an engine restart would break it; with `stuck` in it, the engine
 * then cannot remove that container for `stuckMs` (removal fails and listing shows it still there).
 * `hung` makes every removal and listing fail for good.
 */
class FakeEngine extends NoopBackend {
  readonly live = new Map<string, Record<string, string>>();
  private readonly stuckUntil = new Map<string, number>();
  private seq = 0;
  hung = false;
  constructor(private readonly stuckMs = 3000) {
    super();
  }

  override async prepare(spec: ContainerConfig): Promise<ContainerHandle> {
    const id = `fake-${++this.seq}-${spec.labels['kiln.execution'] ?? 'x'}`;
    this.live.set(id, spec.labels);
    return { id };
  }

  override async exec(handle: ContainerHandle, step: StepCommand, sink: OutputSink, signal?: AbortSignal): Promise<StepResult> {
    const labels = this.live.get(handle.id);
    if (step.command.includes('infra') && labels?.['kiln.attempt'] === '1') {
      if (step.command.includes('stuck')) this.stuckUntil.set(handle.id, Date.now() + this.stuckMs);
      throw new InfrastructureError('the container stopped while a step ran (was the Docker engine restarted?)');
    }
    return super.exec(handle, { ...step, command: step.command.replace(/\b(infra|stuck)\b/g, 'true') }, sink, signal);
  }

  override async destroy(handle: ContainerHandle): Promise<void> {
    if (this.hung || (this.stuckUntil.get(handle.id) ?? 0) > Date.now()) {
      throw Object.assign(new Error('(HTTP code 500) server error - could not kill container: engine busy'), { statusCode: 500 });
    }
    this.live.delete(handle.id);
  }

  override async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    if (this.hung) throw Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });
    return [...this.live]
      .filter(([, l]) => Object.entries(labels).every(([k, v]) => l[k] === v))
      .map(([id, l]) => ({ id, labels: l, state: 'running', createdAt: new Date() }));
  }

  /** Containers of one execution that still exist, with their attempt. */
  of(executionId: string): string[] {
    return [...this.live.values()].filter((l) => l['kiln.execution'] === executionId).map((l) => l['kiln.attempt']!);
  }
}

describe('hand-back of an execution whose container may still run', () => {
  const kilns: TestKiln[] = [];
  afterAll(async () => {
    for (const k of kilns) await k.stop();
  });

  it('keeps the claim while its container cannot be removed, hands it back once it is gone, never two at once, and counts it', async () => {
    const engine = new FakeEngine(3000);
    const k = await startTestKiln({ backend: engine });
    kilns.push(k);
    const token = await k.token('handback');
    const pool = k.kiln.deps.pool;
    const { executionId } = await submitJob(k, token, 'jobs:\n  - name: Stuck\n    steps: [{run: "infra stuck"}]\n');
    let sawStuckWhileRunning = false;
    const done = await waitFor(
      async () => {
        const { rows } = await pool.query(`select status, attempt, lease_expires_at > now() as live from executions where id = $1`, [executionId]);
        const e = rows[0];
        const left = engine.of(executionId);
        // Attempt 2 (or a re-queue) while attempt 1's container still exists: two at once.
        if (e.attempt >= 2) expect(left.filter((a) => a === '1')).toEqual([]);
        if (e.attempt === 1 && left.includes('1') && e.status === 'RUNNING') {
          // Still claimed, and the claim is renewed while the removal is retried.
          expect(e.live).toBe(true);
          sawStuckWhileRunning = true;
        }
        return e.status === 'SUCCEEDED' ? e : undefined;
      },
      60_000,
      'the execution to succeed',
    );
    expect(sawStuckWhileRunning).toBe(true);
    expect(done.attempt).toBe(2);
    const { rows: lines } = await pool.query(`select text from log_chunks where execution_id = $1 and stream = 'SYSTEM' order by seq`, [executionId]);
    expect(lines.map((l) => l.text)).toContainEqual(expect.stringMatching(/^attempt 1 handed back: infrastructure error: the container stopped/));
    const metrics = await k.kiln.metrics.render();
    expect(metrics.body).toMatch(/kiln_executions_requeued_total\{reason="infrastructure"\} 1\b/);
  }, 90_000);

  it('hands back only its own execution: another execution running in the same worker keeps its claim', async () => {
    const engine = new FakeEngine();
    const k = await startTestKiln({ backend: engine });
    kilns.push(k);
    const token = await k.token('handback-queue');
    const pool = k.kiln.deps.pool;
    const other = await submitJob(k, token, 'jobs:\n  - name: Long\n    steps: [{run: "sleep 5"}]\n');
    // The executions table is the queue: a running execution's claim is its worker and attempt.
    const entryOf = async (id: string) =>
      (await pool.query(`select worker_id as locked_by from executions where id = $1 and status = 'RUNNING' and attempt = 1`, [id])).rows[0] as { locked_by: string | null } | undefined;
    await waitFor(async () => ((await entryOf(other.executionId))?.locked_by ? true : undefined), 20_000, 'the long execution to run');
    const broken = await submitJob(k, token, 'jobs:\n  - name: Broken\n    steps: [{run: "infra"}]\n');
    await waitFor(
      async () => {
        const { rows } = await pool.query(`select id, status from executions where id = any($1::uuid[])`, [[other.executionId, broken.executionId]]);
        const status = new Map(rows.map((r) => [r.id, r.status]));
        if (status.get(other.executionId) === 'RUNNING') {
          // The running execution's claim is neither released nor moved to a next attempt.
          expect(await entryOf(other.executionId)).toMatchObject({ locked_by: expect.any(String) });
        }
        return status.get(broken.executionId) === 'SUCCEEDED' && status.get(other.executionId) !== 'RUNNING' ? true : undefined;
      },
      60_000,
      'both executions to end',
    );
    const { rows } = await pool.query(`select id, status, attempt from executions where id = any($1::uuid[]) order by attempt`, [[other.executionId, broken.executionId]]);
    expect(rows).toEqual([
      { id: other.executionId, status: 'SUCCEEDED', attempt: 1 },
      { id: broken.executionId, status: 'SUCCEEDED', attempt: 2 },
    ]);
  }, 90_000);

  it('does not hand back at shutdown a run whose container could not be removed: its lease is left to expire', async () => {
    const engine = new FakeEngine();
    const k = await startTestKiln({ backend: engine });
    kilns.push(k);
    const token = await k.token('handback-shutdown');
    const pool = k.kiln.deps.pool;
    const { executionId } = await submitJob(k, token, 'jobs:\n  - name: Hung\n    steps: [{run: "sleep 60"}]\n');
    await waitFor(async () => (engine.of(executionId).length > 0 ? true : undefined), 20_000, 'the container');
    engine.hung = true; // the engine stops answering
    await k.kiln.worker!.stop({ graceMs: 200 });
    const { rows } = await pool.query(`select status, attempt, error from executions where id = $1`, [executionId]);
    expect(rows[0]).toEqual({ status: 'RUNNING', attempt: 1, error: null });
    const { rows: entries } = await pool.query(`select count(*)::int as n from executions where id = $1 and status = 'QUEUED'`, [executionId]);
    expect(entries[0].n).toBe(0); // no new attempt queued
    expect(engine.of(executionId)).toEqual(['1']);
    engine.hung = false;
  }, 60_000);
});

describe('a hand-back racing a LogWriter batch', () => {
  let k: TestKiln;
  afterAll(() => k?.stop());

  it('neither deadlocks nor collides: the writer waits for the row, then writes nothing under the lost claim', async () => {
    k = await startTestKiln({ worker: false });
    const token = await k.token('handback-log');
    const pool = k.kiln.deps.pool;
    const { executionId, jobId } = await submitJob(k, token, 'jobs:\n  - name: Racy\n    steps: [{run: "true"}]\n');
    const claim = await claimExecution(pool, executionId, 'w-race', 60_000);
    if (claim.kind !== 'claimed') throw new Error(`claim: ${claim.kind}`);
    const claimed = claim.execution;
    const writer = new LogWriter(pool, executionId, claimed.lastSeq, { fence: claimed });
    writer.system('first line');
    await writer.flush();

    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query(`select 1 from executions where id = $1 for update`, [executionId]);
      writer.system('late line');
      const flushed = writer.flush().then(() => null, (err: Error) => err);
      await waitFor(
        async () => {
          const { rows } = await pool.query(
            `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%insert into log_chunks%'`,
          );
          return rows[0].n > 0 ? true : undefined;
        },
        10_000,
        'the writer to wait for the row',
      );
      await requeueAsNextAttempt(sqlOfPg(client), [{ id: executionId, job_id: jobId, attempt: 1, worker_id: 'w-race', priority: 0 }], () => 'handed back');
      await client.query('commit');
      expect(await flushed).toBeNull();
    } finally {
      client.release();
    }
    await writer.close();
    const { rows } = await pool.query(`select seq, text from log_chunks where execution_id = $1 order by seq`, [executionId]);
    expect(rows.map((r) => r.text)).toEqual(['first line', 'handed back']);
    expect(rows.map((r) => r.seq)).toEqual([claimed.lastSeq + 1, claimed.lastSeq + 2]);
    const { rows: e } = await pool.query(`select status, attempt, last_seq from executions where id = $1`, [executionId]);
    expect(e[0]).toEqual({ status: 'QUEUED', attempt: 2, last_seq: claimed.lastSeq + 2 });

    // A closed writer writes nothing more, and no timer of its fires later.
    const closed = new LogWriter(pool, executionId, 100, {});
    closed.system('pending when closed');
    await closed.close();
    closed.system('after close');
    await new Promise((r) => setTimeout(r, 200));
    const { rows: after } = await pool.query(`select count(*)::int as n from log_chunks where execution_id = $1 and seq > 100`, [executionId]);
    expect(after[0].n).toBe(0);
  }, 60_000);
});

describe('a lost attempt whose cancel was already asked for', () => {
  let k: TestKiln;
  afterAll(async () => k?.stop());

  it('ends CANCELLED with its log archived, instead of waiting QUEUED for a claim that never starts it', async () => {
    k = await startTestKiln({ worker: false });
    const token = await k.token('cancel-lost');
    const pool = k.kiln.deps.pool;
    const { executionId } = await submitJob(k, token, 'jobs:\n  - name: CancelLost\n    steps: [{run: "sleep 60"}]\n');
    // A worker that claims it with a 1 ms lease and then dies; a cancel arrives meanwhile.
    const claim = await claimExecution(pool, executionId, 'w-dead', 1);
    expect(claim.kind).toBe('claimed');
    await pool.query(`update executions set cancel_requested_at = now(), error = 'cancelled by the user' where id = $1`, [executionId]);
    await new Promise((r) => setTimeout(r, 20));
    expect(await requeueExpired(pool, () => {})).toBe(1);
    const { rows } = await pool.query(`select status, attempt, finished_at is not null as finished from executions where id = $1`, [executionId]);
    expect(rows[0]).toEqual({ status: 'CANCELLED', attempt: 2, finished: true });
    const steps = await pool.query(`select status from execution_steps where execution_id = $1`, [executionId]);
    expect(steps.rows.map((s) => s.status)).toEqual(['SKIPPED']);
    // Nothing left to claim; only its log's archive is due.
    const queued = await pool.query(`select status = 'QUEUED' as claimable, archive_due_at is not null as archive_due from executions where id = $1`, [executionId]);
    expect(queued.rows).toEqual([{ claimable: false, archive_due: true }]);
  });
});
