import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from './helpers/db.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { startKilnProcess } from './helpers/processes.js';
import { startWorkerProcess, type WorkerProcess } from './helpers/workerProcess.js';

const EXECUTION = `query($id: ID!) { execution(id: $id) {
  id status attempt error steps { status } logs { stream text }
} }`;

function sleeper(name: string, seconds: number): string {
  return `jobs:\n  - name: ${name}\n    image: ${TEST_IMAGE}\n    steps:\n      - run: echo started; sleep ${seconds}; echo done\n`;
}

/** Resolves with the exit code and how long after `since` the process exited. */
function exited(worker: Pick<WorkerProcess, 'child'>, since: number): Promise<{ code: number | null; signal: string | null; ms: number }> {
  const { child } = worker;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode, ms: Date.now() - since });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - since })));
}

/** The JSON lines of a process's stderr, parsed (every line that looks like JSON must parse). */
function jsonLines(output: string): Array<Record<string, any>> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

// The API runs in this process (worker: false) on a database of its own; the workers under test
// are `kiln worker` child processes (compiled: `npm run build` first) that get SIGTERM mid-step.
describe('graceful shutdown of `kiln worker`', () => {
  let api: TestKiln;
  let token: string;
  let docker: Dockerode;
  let dataDir: string;
  const workers: WorkerProcess[] = [];
  beforeAll(async () => {
    docker = await requireDocker();
    api = await startTestKiln({ worker: false });
    token = await api.token('shutdown-user');
    dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-shutdown-'));
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await api?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function submit(spec: string): Promise<string> {
    const res = await api.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: spec }, token);
    expect(res.errors).toBeUndefined();
    return res.data!.submitJob.jobs[0].lastExecution.id;
  }

  async function execution(id: string): Promise<any> {
    return (await api.gql(EXECUTION, { id }, token)).data!.execution;
  }

  /** Waits until the execution's step has printed its first line: the step is under way. */
  function midStep(id: string): Promise<unknown> {
    return waitFor(async () => ((await execution(id)).logs.some((l: any) => l.text === 'started') ? true : undefined), 60_000, 'the step to start');
  }

  async function startWorker(env: Record<string, string>): Promise<{ worker: WorkerProcess; opsUrl: string }> {
    const worker = await startWorkerProcess(api.databaseUrl, dataDir, { KILN_WORKER_PORT: '0', ...env });
    workers.push(worker);
    const opsUrl = await waitFor(async () => /health and metrics at (http:\/\/[\d.:]+)/.exec(worker.output())?.[1], 10_000, 'the listener address');
    return { worker, opsUrl };
  }

  it('lets a running execution finish, answers 503 on /readyz meanwhile, and exits 0', async () => {
    const { worker, opsUrl } = await startWorker({});
    const id = await submit(sleeper('FinishesInGrace', 5));
    await midStep(id);
    const signalled = Date.now();
    worker.child.kill('SIGTERM');
    const exit = exited(worker, signalled);
    // The listener stays up while the execution drains, and says it is not ready.
    const readyz = await waitFor(
      async () => {
        const res = await fetch(`${opsUrl}/readyz`).catch(() => null);
        return res?.status === 503 ? ((await res.json()) as { failed: string[] }) : undefined;
      },
      4_000,
      '/readyz to answer 503',
    );
    expect(readyz.failed).toEqual(['shutdown']);
    expect(await exit).toMatchObject({ code: 0, signal: null });
    expect((await exit).ms).toBeLessThan(30_000);
    const e = await execution(id);
    expect(e).toMatchObject({ status: 'SUCCEEDED', attempt: 1, error: null });
    expect(e.logs.map((l: any) => l.text)).toContain('done');

    // Its log is JSON lines; those about the execution carry its ids.
    const lines = jsonLines(worker.output());
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) expect(line).toMatchObject({ level: expect.any(String), time: expect.any(String), msg: expect.any(String) });
    const started = lines.find((l) => l.executionId === id && /started/.test(l.msg));
    expect(started).toMatchObject({ level: 'info', executionId: id, attempt: 1, workerId: expect.any(String), jobId: expect.any(String) });
    expect(lines.find((l) => l.executionId === id && /SUCCEEDED/.test(l.msg))).toMatchObject({ status: 'SUCCEEDED', durationMs: expect.any(Number) });
    expect(lines.some((l) => /shutting down/.test(l.msg))).toBe(true);
  });

  it('stops an execution that outlasts the grace period, exits 0, and hands it to another worker as attempt 2', async () => {
    const { worker } = await startWorker({ KILN_SHUTDOWN_GRACE_MS: '2000' });
    // Long enough that the step outlasts the grace even when the test sees it start late (busy machine).
    const id = await submit(sleeper('OutlastsGrace', 12));
    await midStep(id);
    const signalled = Date.now();
    worker.child.kill('SIGTERM');
    const exit = await exited(worker, signalled);
    expect(exit).toMatchObject({ code: 0, signal: null });
    // 2 s of grace, then the container is killed without its own grace: well under the 12 s step.
    expect(exit.ms).toBeGreaterThanOrEqual(1_900);
    expect(exit.ms).toBeLessThan(15_000);

    const containers = await docker.listContainers({ all: true, filters: { label: [`kiln.execution=${id}`] } });
    expect(containers).toEqual([]);
    const handed = await execution(id);
    expect(handed).toMatchObject({ status: 'QUEUED', attempt: 2 });
    expect(handed.error).toMatch(/attempt 1 handed back: worker .* shut down before it finished \(grace 2000 ms\); re-queued as attempt 2/);
    expect(handed.steps.map((s: any) => s.status)).toEqual(['PENDING']);
    expect(handed.logs.filter((l: any) => l.stream === 'SYSTEM').map((l: any) => l.text)).toContain(handed.error);
    expect(jsonLines(worker.output()).find((l) => l.executionId === id && /handed back/.test(l.msg))).toMatchObject({ level: 'warn', attempt: 1 });

    // Another worker takes it over at once (no lease to wait for) and runs it to the end.
    const other = await startTestKiln({ databaseUrl: api.databaseUrl, api: false });
    try {
      const done = await waitFor(
        async () => {
          const e = await execution(id);
          return ['QUEUED', 'RUNNING'].includes(e.status) ? undefined : e;
        },
        60_000,
        'attempt 2 to finish',
      );
      expect(done).toMatchObject({ status: 'SUCCEEDED', attempt: 2 });
      expect(done.logs.filter((l: any) => l.text === 'started')).toHaveLength(2);
    } finally {
      await other.stop();
    }
  });

  it('on a second SIGTERM stops the running execution at once, hands it back, and exits 0 long before the grace', async () => {
    const { worker } = await startWorker({ KILN_SHUTDOWN_GRACE_MS: '120000' });
    const id = await submit(sleeper('SecondSignal', 90));
    await midStep(id);
    const signalled = Date.now();
    worker.child.kill('SIGTERM');
    await waitFor(async () => (/shutting down/.test(worker.output()) ? true : undefined), 10_000, 'the first signal to be taken');
    worker.child.kill('SIGTERM');
    const exit = await exited(worker, signalled);
    expect(exit).toMatchObject({ code: 0, signal: null });
    // Nowhere near the 120 s grace nor the 90 s step (generous: a busy 2-core machine).
    expect(exit.ms).toBeLessThan(45_000);
    const lines = jsonLines(worker.output());
    expect(lines.find((l) => /SIGTERM again/.test(l.msg))).toMatchObject({ level: 'warn' });
    expect(lines.some((l) => l.msg === 'stopped')).toBe(true);

    const containers = await docker.listContainers({ all: true, filters: { label: [`kiln.execution=${id}`] } });
    expect(containers).toEqual([]);
    const handed = await execution(id);
    expect(handed).toMatchObject({ status: 'QUEUED', attempt: 2 });
    expect(handed.error).toMatch(/attempt 1 handed back: worker .* shut down before it finished \(grace cut to 0 ms\); re-queued as attempt 2/);
    // Not run to its end here: the step never printed "done".
    expect(handed.logs.map((l: any) => l.text)).not.toContain('done');
  });
});

// `kiln start` on a database of its own, so that nothing left by the tests above runs in it.
describe('graceful shutdown of `kiln start`', () => {
  let api: TestKiln;
  let token: string;
  beforeAll(async () => {
    await requireDocker();
    api = await startTestKiln({ worker: false });
    token = await api.token('start-shutdown-user');
  });
  afterAll(async () => api?.stop());

  async function submitTo(k: TestKiln, t: string, spec: string): Promise<string> {
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: spec }, t);
    expect(res.errors).toBeUndefined();
    return res.data!.submitJob.jobs[0].lastExecution.id;
  }

  it('`kiln start` (API and worker in one process) lets the execution finish, closes its API, and exits 0', async () => {
    const proc = startKilnProcess('start', api.databaseUrl, 'start-shutdown', { HOST: '127.0.0.1', KILN_DEFAULT_IMAGE: TEST_IMAGE });
    try {
      const url = await waitFor(async () => /GraphQL at (http:\/\/[\d.:]+)\/graphql/.exec(proc.output())?.[1], 30_000, 'kiln start to serve');
      const id = await submitTo(api, token, sleeper('StartFinishes', 5));
      await waitFor(async () => ((await api.gql(EXECUTION, { id }, token)).data!.execution.logs.some((l: any) => l.text === 'started') ? true : undefined), 60_000, 'the step to start');
      const signalled = Date.now();
      proc.child.kill('SIGTERM');
      const exit = await exited(proc, signalled);
      expect(exit).toMatchObject({ code: 0, signal: null });
      expect(exit.ms).toBeLessThan(30_000);
      expect((await api.gql(EXECUTION, { id }, token)).data!.execution).toMatchObject({ status: 'SUCCEEDED', attempt: 1, error: null });
      const ran = await api.kiln.deps.pool.query(`select worker_id from executions where id = $1`, [id]);
      expect(ran.rows[0].worker_id).toBe('start-shutdown');
      // Its API is gone with it.
      await expect(fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
    } finally {
      proc.kill();
    }
  });
});

const KILN_BIN = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));

/** `kiln worker` spawned as is (the helper waits for it to run; these tests signal it earlier). */
function spawnWorker(env: Record<string, string>): { child: ChildProcess; output(): string } {
  const child = spawn(process.execPath, [KILN_BIN, 'worker'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', KILN_EXECUTOR: 'noop', KILN_POLL_INTERVAL_MS: '200', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  return { child, output: () => output };
}

/** A "Postgres" on loopback that accepts connections and never answers: start-up hangs on it. */
async function hungPostgres(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `postgres://kiln:kiln@127.0.0.1:${port}/kiln`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// No Docker needed: the noop executor, and a database that answers or one that hangs.
describe('signals around start-up and a shutdown that hangs', () => {
  const cleanups: Array<() => Promise<void>> = [];
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const cleanup of cleanups) await cleanup().catch(() => {});
  });

  async function dataDir(): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-signals-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  function started(p: { output(): string }): Promise<unknown> {
    return waitFor(async () => (/starting kiln worker/.test(p.output()) ? true : undefined), 30_000, 'the worker to start starting');
  }

  it('SIGTERM during start-up stops what has started and exits 0 (not killed by the signal)', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const p = spawnWorker({ DATABASE_URL: db.url, KILN_DATA_DIR: await dataDir() });
    children.push(p.child);
    await started(p);
    const signalled = Date.now();
    p.child.kill('SIGTERM');
    const exit = await exited(p, signalled);
    expect(exit, p.output()).toMatchObject({ code: 0, signal: null });
    expect(exit.ms).toBeLessThan(30_000);
    const msgs = jsonLines(p.output()).map((l) => l.msg);
    expect(msgs.some((m) => /^SIGTERM: shutting down/.test(m))).toBe(true);
    // Either start-up was cut short, or it had just finished and the worker stopped as usual.
    expect(msgs.some((m) => m === 'stopped during start-up' || m === 'stopped')).toBe(true);
  });

  it('a third signal exits 1 at once, with a log line, even while start-up hangs', async () => {
    const pg = await hungPostgres();
    cleanups.push(() => pg.close());
    const p = spawnWorker({ DATABASE_URL: pg.url, KILN_DATA_DIR: await dataDir() });
    children.push(p.child);
    await started(p);
    const signalled = Date.now();
    p.child.kill('SIGTERM');
    await waitFor(async () => (/shutting down/.test(p.output()) ? true : undefined), 10_000, 'the first signal');
    p.child.kill('SIGINT');
    await waitFor(async () => (/SIGINT again/.test(p.output()) ? true : undefined), 10_000, 'the second signal');
    p.child.kill('SIGTERM');
    const exit = await exited(p, signalled);
    expect(exit, p.output()).toMatchObject({ code: 1, signal: null });
    expect(exit.ms).toBeLessThan(20_000);
    expect(jsonLines(p.output()).find((l) => /a third time: exiting now/.test(l.msg))).toMatchObject({ level: 'error' });
  });

  it('exits 1 with a log line once the shutdown outlasts grace + 30 s (a dependency hangs)', async () => {
    const pg = await hungPostgres();
    cleanups.push(() => pg.close());
    const p = spawnWorker({ DATABASE_URL: pg.url, KILN_DATA_DIR: await dataDir(), KILN_SHUTDOWN_GRACE_MS: '0' });
    children.push(p.child);
    await started(p);
    const signalled = Date.now();
    p.child.kill('SIGTERM');
    const exit = await exited(p, signalled);
    expect(exit, p.output()).toMatchObject({ code: 1, signal: null });
    expect(exit.ms).toBeGreaterThanOrEqual(29_000);
    expect(exit.ms).toBeLessThan(55_000);
    expect(jsonLines(p.output()).find((l) => /did not finish within 30000 ms/.test(l.msg))).toMatchObject({ level: 'error' });
  }, 90_000);
});
