import type Dockerode from 'dockerode';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { containersOf, jobYaml, logsOf, outputOf, runJob, submitJob, waitForEnd, waitForStatus } from './helpers/runner.js';

const GRACE_MS = 3000;

function durationMs(e: { startedAt: string | null; finishedAt: string | null }): number {
  return new Date(e.finishedAt!).getTime() - new Date(e.startedAt!).getTime();
}

describe('stopping a running execution (real Docker engine)', () => {
  let docker: Dockerode;

  beforeAll(async () => {
    docker = await requireDocker();
  });

  describe('by its timeout', () => {
    let k: TestKiln;
    let token: string;

    beforeAll(async () => {
      k = await startTestKiln({ env: { KILN_STOP_GRACE_MS: String(GRACE_MS) } });
      token = await k.token('timeouts');
    });

    afterAll(async () => {
      await k?.stop();
    });

    it('ends `sleep 600` with `timeout: 3s` TIMED_OUT within a few seconds, and leaves no container', async () => {
      const e = await runJob(k, token, jobYaml('Sleeper', ['sleep 600'], ['timeout: 3s']), 30_000);
      expect(e.status).toBe('TIMED_OUT');
      expect(e.error).toBe('timed out after 3000 ms');
      expect(e.exitCode).toBeNull();
      expect(e.steps[0]!.status).toBe('FAILED');
      // SIGTERM ends `sleep` at once: no waiting for the grace period.
      expect(durationMs(e)).toBeGreaterThanOrEqual(3000);
      expect(durationMs(e)).toBeLessThan(3000 + GRACE_MS);
      expect(await containersOf(docker, e.id)).toEqual([]);
    });

    it("ends the execution TIMED_OUT when a step's own timeout passes, skipping the rest", async () => {
      const e = await runJob(k, token, jobYaml('SlowStep', ['echo first', 'sleep 600', 'echo never'], []).replace('      - run: "sleep 600"', '      - run: "sleep 600"\n        timeout: 2s'), 30_000);
      expect(e.status).toBe('TIMED_OUT');
      expect(e.error).toBe('step "sleep 600" timed out after 2000 ms');
      expect(e.steps.map((s) => s.status)).toEqual(['SUCCEEDED', 'FAILED', 'SKIPPED']);
      expect(outputOf(e.logs)).toEqual(['first']);
      expect(await containersOf(docker, e.id)).toEqual([]);
    });

    it('sends SIGTERM first: a step that traps it cleans up and its last words are logged', async () => {
      const e = await runJob(k, token, jobYaml('Trapper', ['trap "echo cleaning up; exit 1" TERM; echo working; sleep 600 & wait'], ['timeout: 2s']), 30_000);
      expect(e.status).toBe('TIMED_OUT');
      expect(outputOf(e.logs)).toEqual(['working', 'cleaning up']);
    });

    it('kills a step that ignores SIGTERM after the grace period', async () => {
      const e = await runJob(k, token, jobYaml('Stubborn', ['trap "echo not yet" TERM; while :; do sleep 1; done'], ['timeout: 2s']), 30_000);
      expect(e.status).toBe('TIMED_OUT');
      expect(outputOf(e.logs)).toContain('not yet');
      expect(durationMs(e)).toBeGreaterThanOrEqual(2000 + GRACE_MS - 200);
      expect(await containersOf(docker, e.id)).toEqual([]);
    });
  });

  describe('by cancelExecution sent to an API process while another process runs it', () => {
    let api: TestKiln;
    let worker: TestKiln;
    let token: string;
    let db: pg.Client;

    beforeAll(async () => {
      api = await startTestKiln({ worker: false });
      worker = await startTestKiln({ api: false, databaseUrl: api.databaseUrl, env: { KILN_STOP_GRACE_MS: String(GRACE_MS) } });
      token = await api.token('canceller');
      db = new pg.Client({ connectionString: api.databaseUrl });
      await db.connect();
    });

    afterAll(async () => {
      await db?.end();
      await worker?.stop();
      await api?.stop();
    });

    it('ends the execution CANCELLED within about a second, and leaves no container', async () => {
      expect(api.kiln.worker).toBeNull();
      expect(worker.kiln.http).toBeNull();
      const { executionId } = await submitJob(api, token, jobYaml('LongBuild', ['echo started; sleep 600'], ['timeout: 10m']));
      await waitForStatus(api, token, executionId, 'RUNNING');
      // Wait until the step really runs, so the cancel has a process to stop.
      const started = Date.now();
      while (!(await logsOf(api, token, executionId)).some((l) => l.text === 'started')) {
        if (Date.now() - started > 30_000) throw new Error('the step never printed "started"');
        await new Promise((r) => setTimeout(r, 100));
      }

      const res = await api.gql(`mutation($id: ID!) { cancelExecution(id: $id) { id status } }`, { id: executionId }, token);
      expect(res.errors).toBeUndefined();
      expect(res.data!.cancelExecution.status).toBe('RUNNING'); // the worker ends it, not the API

      const e = await waitForEnd(api, token, executionId, 30_000);
      expect(e.status).toBe('CANCELLED');
      const { rows } = await db.query(`select cancel_requested_at, finished_at, worker_id from executions where id = $1`, [executionId]);
      expect(rows[0].worker_id).toBe(worker.kiln.deps.config.workerId);
      // Notified through Postgres: the stop starts at once (no polling); SIGTERM ends `sleep` at once.
      const reactionMs = rows[0].finished_at.getTime() - rows[0].cancel_requested_at.getTime();
      expect(reactionMs).toBeLessThan(2500);
      expect(await containersOf(docker, executionId)).toEqual([]);
      const system = (await logsOf(api, token, executionId)).filter((l) => l.stream === 'SYSTEM').map((l) => l.text);
      expect(system.at(-1)).toBe('cancelled');
    });
  });
});
