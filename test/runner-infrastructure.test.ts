import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../src/runner/docker/docker.js';
import pg from 'pg';
import { atPostgresBoundary, InfrastructureError, isInfrastructureError } from '../src/runner/infrastructure.js';
import { CheckoutError } from '../src/runner/workspace.js';
import { NoopBackend } from '../src/runner/noop.js';
import type { ContainerHandle, OutputSink, StepCommand, StepResult } from '../src/runner/types.js';
import { tmpdir } from 'node:os';
import { captureOutput, GIT_TEST_IMAGE, removeTestContainers, requireDocker, testContainerConfig } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submitJob } from './helpers/runner.js';

/** A NoopBackend whose first `failures` steps break as an engine restart would break them. */
class FlakyEngine extends NoopBackend {
  constructor(private failures: number) {
    super();
  }
  override async exec(handle: ContainerHandle, step: StepCommand, sink: OutputSink, signal?: AbortSignal): Promise<StepResult> {
    if (this.failures > 0) {
      this.failures--;
      throw new InfrastructureError('the container stopped while a step ran (was the Docker engine restarted?)');
    }
    return super.exec(handle, step, sink, signal);
  }
}

describe('infrastructure failures', () => {
  it('tells connection and engine failures from the build\'s own errors', () => {
    expect(isInfrastructureError(new InfrastructureError('x'))).toBe(true);
    expect(isInfrastructureError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isInfrastructureError(Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT', syscall: 'connect' }))).toBe(true);
    expect(isInfrastructureError(Object.assign(new Error('the database system is starting up'), { code: '57P03' }))).toBe(true);
    // By origin, never by text: a message that merely says so (git's, a build's) is not the infrastructure.
    expect(isInfrastructureError(new Error('Connection terminated unexpectedly'))).toBe(false);
    expect(isInfrastructureError(new CheckoutError('cannot fetch https://example.test/r.git: socket hang up'))).toBe(false);
    expect(isInfrastructureError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isInfrastructureError(Object.assign(new Error('no such file'), { code: 'ENOENT', syscall: 'open' }))).toBe(false);
    expect(isInfrastructureError(new Error('step "build" exited with code 2'))).toBe(false);
  });

  it('classifies what the pg client throws by its origin', async () => {
    const failing = (err: Error) => atPostgresBoundary({ query: () => Promise.reject(err), connect: () => Promise.reject(err) } as unknown as pg.Pool);
    // The client lost its connection: the infrastructure.
    await expect(failing(new Error('Connection terminated unexpectedly')).query('select 1')).rejects.toBeInstanceOf(InfrastructureError);
    await expect(failing(new Error('timeout exceeded when trying to connect')).connect()).rejects.toBeInstanceOf(InfrastructureError);
    // The server answered with an error of the statement: not the infrastructure.
    const unique = Object.assign(new pg.DatabaseError('duplicate key value violates unique constraint', 0, 'error'), { code: '23505' });
    const caught = await failing(unique).query('select 1').catch((e: unknown) => e);
    expect(caught).toBe(unique);
    expect(isInfrastructureError(caught)).toBe(false);
    const shuttingDown = Object.assign(new pg.DatabaseError('terminating connection due to administrator command', 0, 'error'), { code: '57P01' });
    await expect(failing(shuttingDown).query('select 1')).rejects.toBeInstanceOf(InfrastructureError);
  });

  describe('Docker backend', () => {
    let docker: Dockerode;
    beforeAll(async () => {
      docker = await requireDocker();
    });
    afterAll(() => removeTestContainers(docker));

    it('reports a step whose container was stopped under it as an infrastructure error, not as its exit code', async () => {
      const backend = new DockerBackend(docker);
      const handle = await backend.prepare(testContainerConfig());
      try {
        await backend.start(handle);
        const out = captureOutput();
        // Its outcome is taken at once: the step may reject while the kill below is still awaited.
        const outcome = backend.exec(handle, { command: 'echo up; sleep 30', env: {}, workdir: '/workspace' }, out.sink).then(
          (result) => ({ result }),
          (error: unknown) => ({ error }),
        );
        await waitFor(async () => (out.text('STDOUT').includes('up') ? true : undefined), 10_000, 'the step to start');
        await docker.getContainer(handle.id).kill({ signal: 'SIGKILL' });
        const ended = await outcome;
        expect('error' in ended && ended.error).toBeInstanceOf(InfrastructureError);
      } finally {
        await backend.destroy(handle);
      }
    }, 30_000);

    it('still reports a step killed inside a running container as the step\'s failure', async () => {
      const backend = new DockerBackend(docker);
      const handle = await backend.prepare(testContainerConfig());
      try {
        await backend.start(handle);
        const result = await backend.exec(handle, { command: 'kill -9 $$', env: {}, workdir: '/workspace' }, captureOutput().sink);
        expect(result.exitCode).toBe(137);
      } finally {
        await backend.destroy(handle);
      }
    }, 30_000);
  });

  describe('runner', () => {
    let k: TestKiln;
    let token: string;
    afterAll(() => k?.stop());

    it('hands an execution broken by the engine to its next attempt instead of failing it or spending a retry', async () => {
      // The later checkout test clones from the test machine's temp directory.
      k = await startTestKiln({ backend: new FlakyEngine(1), env: { KILN_GIT_IMAGE: GIT_TEST_IMAGE, KILN_GIT_LOCAL_ROOT: tmpdir() } });
      token = await k.token('engineer');
      const { jobId, executionId } = await submitJob(k, token, 'jobs:\n  - name: Flaky\n    retries: 1\n    steps: [{run: "true"}]\n');
      const pool = k.kiln.deps.pool;
      const done = await waitFor(async () => {
        const { rows } = await pool.query(`select status, attempt, error from executions where id = $1`, [executionId]);
        return rows[0].status === 'SUCCEEDED' ? rows[0] : undefined;
      }, 30_000, 'the execution to succeed');
      expect(done.attempt).toBe(2);
      const { rows: lines } = await pool.query(`select text from log_chunks where execution_id = $1 and stream = 'SYSTEM'`, [executionId]);
      expect(lines.map((l) => l.text)).toContainEqual(expect.stringMatching(/^attempt 1 handed back: infrastructure error: the container stopped/));
      const { rows: attempts } = await pool.query(`select attempt, outcome, finished_at >= started_at as ordered from execution_attempts where execution_id = $1 order by attempt`, [executionId]);
      expect(attempts).toEqual([
        { attempt: 1, outcome: 'LOST', ordered: true },
        { attempt: 2, outcome: 'SUCCEEDED', ordered: true },
      ]);
      const { rows } = await pool.query(`select count(*)::int as n from executions where job_id = $1`, [jobId]);
      expect(rows[0].n).toBe(1); // no retry execution
    }, 60_000);

    it('records a checkout whose error merely mentions a lost connection as FAILED, not as the infrastructure\'s', async () => {
      const { executionId } = await submitJob(k, token, `jobs:\n  - name: BadRepo\n    repository: { url: "file://${tmpdir()}/nonexistent/socket hang up/Connection terminated" }\n    steps: [{run: "true"}]\n`);
      const pool = k.kiln.deps.pool;
      const done = await waitFor(async () => {
        const { rows } = await pool.query(`select status, attempt, error from executions where id = $1`, [executionId]);
        return ['QUEUED', 'RUNNING'].includes(rows[0].status) ? undefined : rows[0];
      }, 30_000, 'the execution to end');
      expect(done).toMatchObject({ status: 'FAILED', attempt: 1, error: expect.stringMatching(/socket hang up/) });
    }, 60_000);
  });
});

describe('archive retries', () => {
  it('wait 1 s, 2 s, 4 s ... between tries while the store fails, never more than 15 s', async () => {
    const { archiveRetryDelayMs } = await import('../src/tasks/archive-log.js');
    expect([1, 2, 3, 4, 5, 6, 50].map(archiveRetryDelayMs)).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
  });
});
