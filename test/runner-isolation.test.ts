import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NONROOT_TEST_IMAGE, requireDocker } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { containersOf, getExecution, jobYaml, logsOf, outputOf, runJob, submitJob, waitForEnd, waitForStatus, type LogLineView } from './helpers/runner.js';

const PIDS_LIMIT = 128;

/** Processes on the host: a fork bomb that escaped its container would show here. */
async function hostProcessCount(): Promise<number> {
  const { readdir } = await import('node:fs/promises');
  return (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).length;
}

describe('the isolation of a job container (real Docker engine)', () => {
  let docker: Dockerode;
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    docker = await requireDocker();
    k = await startTestKiln({
      env: {
        KILN_PIDS_LIMIT: String(PIDS_LIMIT),
        KILN_STOP_GRACE_MS: '2000',
        KILN_MAX_MEMORY: '1g',
        KILN_DEFAULT_MEMORY: '256m',
        KILN_MAX_LOG_BYTES: '4m',
      },
    });
    token = await k.token('isolation');
  });

  afterAll(async () => {
    await k?.stop();
  });

  /**
   * After a hostile job: the API answers over HTTP (health and a GraphQL query) and this Kiln's
   * one worker runs a next job to SUCCEEDED.
   */
  async function expectHealthyAfter(name: string): Promise<void> {
    expect((await fetch(`${k.url}/healthz`)).status).toBe(200);
    const me = await k.gql(`{ me { id } }`, {}, token);
    expect(me.data).toEqual({ me: { id: 'isolation' } });
    const next = await runJob(k, token, jobYaml(name, ['echo still here']));
    expect(next.status).toBe('SUCCEEDED');
    expect(outputOf(next.logs)).toEqual(['still here']);
  }

  describe('seen from inside', () => {
    let probe: { status: string; logs: LogLineView[] };
    /** The STDOUT lines of step `index`. */
    const stepOut = (index: number) => probe.logs.filter((l) => l.step === index && l.stream !== 'SYSTEM').map((l) => l.text);

    beforeAll(async () => {
      probe = await runJob(
        k,
        token,
        jobYaml('Probe', [
          'cat /proc/self/status',
          'touch /kiln-was-here 2>&1; echo "write-root=$?"',
          'mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>&1; echo "mount=$?"',
          'ls /var/run/docker.sock /run/docker.sock 2>&1; echo "socket=$?"; grep -c docker.sock /proc/mounts || true',
          'ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1',
          'touch /workspace/ok /tmp/ok && echo workspace-and-tmp-writable',
        ]),
      );
    });

    it('runs every probe step to the end', () => {
      expect(probe.status).toBe('SUCCEEDED');
    });

    it('has no effective, permitted or bounding capabilities, NoNewPrivs 1 and the default seccomp filter', () => {
      const status = stepOut(0).join('\n');
      expect(status).toMatch(/^CapEff:\s+0{16}$/m);
      expect(status).toMatch(/^CapPrm:\s+0{16}$/m);
      expect(status).toMatch(/^CapBnd:\s+0{16}$/m);
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      expect(status).toMatch(/^Seccomp:\s+2$/m);
    });

    it('cannot write to /', () => {
      expect(stepOut(1).join('\n')).toMatch(/Read-only file system/);
      expect(stepOut(1)).toContain('write-root=1');
    });

    it('cannot mount anything', () => {
      expect(stepOut(2).at(-1)).toMatch(/^mount=[1-9]/);
      expect(stepOut(2).join('\n')).toMatch(/permission denied|not permitted/i);
    });

    it('has no Docker socket', () => {
      const out = stepOut(3);
      expect(out.join('\n')).toMatch(/No such file or directory/);
      expect(out).toContain('socket=1');
      expect(out.at(-1)).toBe('0');
    });

    it('has only the loopback network interface', () => {
      expect(stepOut(4).map((l) => l.trim())).toEqual(['lo', 'lo']);
    });

    it('can write to /workspace and /tmp', () => {
      expect(stepOut(5)).toEqual(['workspace-and-tmp-writable']);
    });
  });

  it('creates the container with its labels and the server-side limits', async () => {
    const { jobId, executionId } = await submitJob(k, token, jobYaml('Labelled', ['sleep 60'], ['resources: { cpus: 0.5 }']));
    await waitForStatus(k, token, executionId, 'RUNNING');
    const [container] = await waitFor(async () => {
      const found = await containersOf(docker, executionId);
      return found.some((c) => c.State === 'running') ? found : undefined;
    }, 30_000, 'the container to run');
    const info = await docker.getContainer(container!.Id).inspect();
    const execution = await getExecution(k, token, executionId);
    expect(info.Config.Labels).toMatchObject({
      kiln: 'true',
      'kiln.job': jobId,
      'kiln.execution': executionId,
      'kiln.attempt': String(execution.attempt),
      'kiln.worker': k.kiln.deps.config.workerId,
    });
    expect(info.HostConfig).toMatchObject({
      Privileged: false,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      NetworkMode: 'none',
      PidsLimit: PIDS_LIMIT,
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      NanoCpus: 500_000_000,
      ReadonlyRootfs: true,
      Init: true,
    });
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    expect(info.Mounts.every((m) => m.Type === 'volume')).toBe(true);
    const cancelled = await k.gql(`mutation($id: ID!) { cancelExecution(id: $id) { id } }`, { id: executionId }, token);
    expect(cancelled.errors).toBeUndefined();
    await waitForEnd(k, token, executionId);
  });

  it('stops a fork bomb at the PID limit, and the worker stays healthy', { timeout: 150_000 }, async () => {
    const before = await hostProcessCount();
    // Every process of the bomb forks forever: without a limit it would take the host down. The
    // step's own shell forks nothing once the bomb is lit (a shell that cannot fork exits), it
    // waits for a sleep started before, so the bomb runs until the timeout.
    const bomb = 'sleep 120 & keep=$!; bomb() { while :; do bomb & done; }; bomb & wait $keep';
    // 40 s: beside a CPU-heavy test file (npm test runs two at once on 2 cores) the bomb, held to
    // half a CPU, has been seen to need more than 18 s to reach half the limit.
    const { executionId } = await submitJob(k, token, jobYaml('ForkBomb', [bomb], ['timeout: 40s', 'resources: { cpus: 0.5 }']));
    await waitForStatus(k, token, executionId, 'RUNNING');
    // From the host, sampled until the bomb has spread to half the limit or its container is gone:
    // the process count never passes the limit. Bomb processes whose fork fails exit, so the count
    // hovers under the limit and a sample rarely lands on it; the "can't fork" errors asserted
    // below show that it hit the limit. (In 3 of 6 full runs today, beside another test file, the
    // engine's samples stayed at 4 processes for 36 s while the bomb ran; the cause is not found,
    // so a sample is not what the test rests on.)
    let highest = 0;
    await waitFor(async () => {
      const [c] = await containersOf(docker, executionId);
      if (c === undefined) return true;
      if (c.State !== 'running') return undefined;
      const stats = await docker.getContainer(c.Id).stats({ stream: false });
      highest = Math.max(highest, stats.pids_stats?.current ?? 0);
      return highest >= PIDS_LIMIT / 2 ? true : undefined;
    }, 60_000, 'the fork bomb to spread or end');
    expect(highest).toBeLessThanOrEqual(PIDS_LIMIT);
    expect(await hostProcessCount()).toBeLessThan(before + PIDS_LIMIT + 50);

    const ended = await waitForEnd(k, token, executionId, 70_000);
    expect(ended.status, ended.error ?? '').toBe('TIMED_OUT');
    expect(await containersOf(docker, executionId)).toEqual([]);
    const logs = outputOf(await logsOf(k, token, executionId), 'STDERR').join('\n');
    expect(logs).toMatch(/can't fork|Resource temporarily unavailable/);

    // The worker goes on: it runs the next job, and the API answers.
    await expectHealthyAfter('AfterTheBomb');
    expect(await hostProcessCount()).toBeLessThan(before + 50);
  });

  it('ends a memory hog FAILED and says it ran out of memory', async () => {
    const e = await runJob(k, token, jobYaml('MemoryHog', ['echo allocating; dd if=/dev/zero of=/dev/null bs=256M count=1'], ['resources: { memory: 64m }']));
    expect(e.status).toBe('FAILED');
    expect(e.exitCode).toBe(137);
    expect(e.error).toMatch(/out of memory/);
    expect(e.error).toMatch(/memory limit 64m/);
    expect(e.steps[0]).toMatchObject({ status: 'FAILED', exitCode: 137 });
    expect(e.logs.filter((l) => l.stream === 'SYSTEM').map((l) => l.text).join('\n')).toMatch(/killed by the kernel: out of memory/);
    // Only the container was killed: the worker runs the next job, and the API answers.
    await expectHealthyAfter('AfterTheHog');
  });

  it('refuses network bridge unless the server allows it', async () => {
    const e = await runJob(k, token, jobYaml('WantsNetwork', ['echo never runs'], ['network: bridge']));
    expect(e.status).toBe('FAILED');
    expect(e.error).toMatch(/network: bridge is not allowed on this server \(KILN_ALLOW_BRIDGE\)/);
    expect(outputOf(e.logs)).toEqual([]);
  });

  it('refuses more memory than the server allows', async () => {
    const e = await runJob(k, token, jobYaml('Greedy', ['echo never runs'], ['resources: { memory: 2g }']));
    expect(e.status).toBe('FAILED');
    expect(e.error).toBe("resources.memory 2g exceeds this server's maximum of 1g (KILN_MAX_MEMORY)");
  });

  it("runs the steps of an image with a non-root user as that user", async () => {
    const e = await runJob(k, token, jobYaml('NonRoot', ['id -u; id -un; touch /workspace/built && echo ok'], [`image: ${NONROOT_TEST_IMAGE}`]));
    expect(e.status).toBe('SUCCEEDED');
    expect(outputOf(e.logs)).toEqual(['1000', 'builder', 'ok']);
  });
});
