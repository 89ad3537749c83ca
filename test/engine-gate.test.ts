import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerBackend } from '../src/runner/docker/docker.js';
import { EngineGate } from '../src/runner/engineGate.js';
import { infrastructureVerdict, MAX_INFRASTRUCTURE_ATTEMPTS } from '../src/worker/run/infrastructureFailure.js';
import { requireDocker } from './helpers/docker.js';
import { startEngineProxy, type EngineProxy } from './helpers/engineProxy.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { submitJob } from './helpers/runner.js';

describe('how a run broken by the infrastructure ends', () => {
  const cases: Array<[string, { attempt: number; engineDownBefore: number; engineDown: boolean }, ReturnType<typeof infrastructureVerdict>]> = [
    ['a first failure is handed back after 1 s', { attempt: 1, engineDownBefore: 0, engineDown: false }, { action: 'hand back', engineDown: false, delayMs: 1000 }],
    ['each counted failure doubles the wait', { attempt: 3, engineDownBefore: 0, engineDown: false }, { action: 'hand back', engineDown: false, delayMs: 4000 }],
    ['the last counted attempt fails the run', { attempt: MAX_INFRASTRUCTURE_ATTEMPTS, engineDownBefore: 0, engineDown: false }, { action: 'fail' }],
    ['attempts lost to a missing engine do not count', { attempt: 7, engineDownBefore: 4, engineDown: false }, { action: 'hand back', engineDown: false, delayMs: 4000 }],
    ['an attempt that broke while the engine was down is always handed back', { attempt: 9, engineDownBefore: 0, engineDown: true }, { action: 'hand back', engineDown: true, delayMs: 15_000 }],
    ['... and waits no longer for the earlier ones', { attempt: 4, engineDownBefore: 3, engineDown: true }, { action: 'hand back', engineDown: true, delayMs: 1000 }],
  ];
  it.each(cases)('%s', (_, failure, verdict) => {
    expect(infrastructureVerdict(failure)).toEqual(verdict);
  });
});

describe('a worker whose Docker engine does not answer', () => {
  let proxy: EngineProxy;
  let k: TestKiln;
  let token: string;
  const logs: string[] = [];
  const readyz = async () => {
    const res = await fetch(`${k.url}/readyz`);
    return { status: res.status, body: (await res.json()) as { checks: Record<string, string>; failed: string[] } };
  };
  const execution = async (id: string) =>
    (await k.kiln.deps.pool.query(`select status, attempt, error, engine_down_attempts from executions where id = $1`, [id])).rows[0];

  beforeAll(async () => {
    await requireDocker();
    proxy = await startEngineProxy(); // closed: no socket, as when Docker is not running
    // dockerode reads DOCKER_HOST when Kiln creates its backend, as it would for a user.
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = proxy.dockerHost;
    try {
      k = await startTestKiln({ env: { DOCKER_HOST: proxy.dockerHost, KILN_LEASE_MS: '3000' }, log: (m) => void logs.push(m) });
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
    token = await k.token('gatekeeper');
  });
  afterAll(async () => {
    await proxy?.open(); // so that Kiln can remove what it started
    await k?.stop();
    await proxy?.dispose();
  });

  it('takes no execution, says so once in its log and in /readyz, and runs the job once the engine answers', async () => {
    const warning = `the Docker engine at ${proxy.dockerHost} is not reachable (is it running?)`;
    // Said at start-up, before any job.
    expect(logs.filter((l) => l.includes(warning))).toHaveLength(1);
    const { executionId } = await submitJob(k, token, 'jobs:\n  - name: WaitsForDocker\n    steps: [{run: "echo built"}]\n');
    await delay(4000);
    expect(await execution(executionId)).toMatchObject({ status: 'QUEUED', attempt: 1, error: null });
    const { rows: attempts } = await k.kiln.deps.pool.query(`select 1 from execution_attempts where execution_id = $1`, [executionId]);
    expect(attempts).toHaveLength(0); // never even claimed
    const probe = await readyz();
    expect(probe.status).toBe(503);
    expect(probe.body.failed).toEqual(['docker']);
    expect(probe.body.checks.docker).toBe('failed'); // why is in the log (above), not in /readyz (security review L8)
    expect(logs.filter((l) => l.includes('is not reachable'))).toHaveLength(1);

    await proxy.open();
    const done = await waitFor(async () => {
      const e = await execution(executionId);
      return e.status === 'QUEUED' || e.status === 'RUNNING' ? undefined : e;
    }, 15_000, 'the execution to run once the engine answers');
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempt: 1 });
    expect(logs.filter((l) => l.includes(`the Docker engine at ${proxy.dockerHost} answers again`))).toHaveLength(1);
    await waitFor(async () => ((await readyz()).status === 200 ? true : undefined), 5000, '/readyz to answer 200');
  }, 60_000);

  it('hands a run whose engine went away mid-step back to the queue, without counting it, and runs it again once the engine is back', async () => {
    const { executionId } = await submitJob(k, token, 'jobs:\n  - name: CutMidStep\n    steps: [{run: "echo up; sleep 4; echo down"}]\n');
    const pool = k.kiln.deps.pool;
    await waitFor(async () => {
      const { rows } = await pool.query(`select 1 from log_chunks where execution_id = $1 and stream = 'STDOUT' and text = 'up'`, [executionId]);
      return rows.length > 0 ? true : undefined;
    }, 20_000, 'the step to start');
    await proxy.close();
    // The run waits (claim held) until it can remove its container; it is never recorded FAILED.
    await waitFor(async () => ((await readyz()).status === 503 ? true : undefined), 5000, '/readyz to name the engine');
    await delay(3000);
    expect((await execution(executionId)).status).toMatch(/^(RUNNING|QUEUED)$/);
    await proxy.open();
    const done = await waitFor(async () => {
      const e = await execution(executionId);
      return e.status === 'QUEUED' || e.status === 'RUNNING' ? undefined : e;
    }, 40_000, 'the execution to end after the engine came back');
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempt: 2, engine_down_attempts: 1 });
    const { rows: lines } = await pool.query(`select text from log_chunks where execution_id = $1 and stream = 'SYSTEM' order by seq`, [executionId]);
    expect(lines.map((l) => l.text)).toContainEqual(
      expect.stringMatching(/^attempt 1 handed back: infrastructure error: .*the engine was not reachable: this attempt does not count; next attempt in 1 s/),
    );
  }, 90_000);

  it('tells the gate\'s listeners once per change, and when the engine was seen down', async () => {
    const seen: boolean[] = [];
    const lines: string[] = [];
    const gate = new EngineGate(new DockerBackend({ socketPath: proxy.socketPath }), (m) => void lines.push(m), { downIntervalMs: 100, upIntervalMs: 100 });
    gate.onChange((up) => void seen.push(up));
    await proxy.close();
    const before = Date.now();
    try {
      await gate.start();
      expect(gate.up).toBe(false);
      // ENOENT once the socket file is gone; a ping racing the proxy's close may meet a closing socket.
      expect(gate.reason).toMatch(/^the Docker engine at unix:\/\/.* is not reachable \(is it running\?\): (connect ENOENT|connect ECONNREFUSED|write EPIPE|socket hang up)/);
      expect(gate.downSince(before)).toBe(true);
      await delay(500); // several checks, one change
      await proxy.open();
      await waitFor(async () => (gate.up ? true : undefined), 5000, 'the gate to open');
      const upAt = Date.now();
      expect(gate.downSince(upAt)).toBe(false);
      expect(gate.downSince(before)).toBe(true);
      expect(seen).toEqual([false, true]);
      expect(lines).toHaveLength(2);
    } finally {
      gate.stop();
    }
  }, 30_000);
});
