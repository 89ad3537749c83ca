import type Dockerode from 'dockerode';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineSplitter } from '../src/logs/lines.js';
import { DockerBackend } from '../src/runner/docker/docker.js';
import type { ContainerHandle, OutputStream, StepCommand } from '../src/runner/types.js';
import { captureOutput, requireDocker, removeTestContainers, testContainerConfig } from './helpers/docker.js';

/**
 * A registry address on loopback where nothing listens: the engine's pull fails at once
 * and no packet leaves the machine (a Docker Hub name would make the engine resolve DNS).
 */
const UNPULLABLE_IMAGE = '127.0.0.1:1/kiln-test/no-such-image:latest';

function step(command: string, overrides: Partial<StepCommand> = {}): StepCommand {
  return { command, env: {}, workdir: '/workspace', ...overrides };
}

describe('DockerBackend', () => {
  let docker: Dockerode;
  let backend: DockerBackend;
  let shared: ContainerHandle;
  const created: ContainerHandle[] = [];

  /** Prepares and starts a container that afterAll removes. */
  async function startContainer(...args: Parameters<typeof testContainerConfig>): Promise<ContainerHandle> {
    const handle = await backend.prepare(testContainerConfig(...args));
    created.push(handle);
    await backend.start(handle);
    return handle;
  }

  beforeAll(async () => {
    docker = await requireDocker();
    backend = new DockerBackend(docker);
    shared = await startContainer({ env: { FROM_CONTAINER: 'container', OVERRIDDEN: 'container' } });
  });

  afterAll(async () => {
    if (!backend) return;
    await Promise.all(created.map((handle) => backend.destroy(handle)));
    await removeTestContainers(docker);
  });

  it('answers ping', async () => {
    await expect(backend.ping()).resolves.toBeUndefined();
  });

  it('fails ping with a clear message when no engine listens', async () => {
    const nowhere = new DockerBackend({ socketPath: '/nonexistent/docker.sock' });
    await expect(nowhere.ping()).rejects.toThrow(/Docker engine does not answer \(socket \/nonexistent\/docker.sock\)/);
  });

  it('captures stdout and stderr separately and completely', async () => {
    const out = captureOutput();
    const result = await backend.exec(
      shared,
      step('echo out1; echo err1 >&2; printf "out2 no newline"; printf "err2\\n" >&2'),
      out.sink,
    );
    expect(result).toEqual({ exitCode: 0, oomKilled: false });
    expect(out.text('STDOUT')).toBe('out1\nout2 no newline');
    expect(out.text('STDERR')).toBe('err1\nerr2\n');
    for (const chunk of out.chunks) expect(Buffer.isBuffer(chunk.data)).toBe(true);
  });

  it('resolves with the exit code of the step', async () => {
    await expect(backend.exec(shared, step('true'), captureOutput().sink)).resolves.toEqual({ exitCode: 0, oomKilled: false });
    const out = captureOutput();
    await expect(backend.exec(shared, step('echo before; exit 3'), out.sink)).resolves.toEqual({ exitCode: 3, oomKilled: false });
    expect(out.text('STDOUT')).toBe('before\n');
    await expect(backend.exec(shared, step('no-such-command'), captureOutput().sink)).resolves.toEqual({
      exitCode: 127,
      oomKilled: false,
    });
    // Killed, but not for lack of memory.
    await expect(backend.exec(shared, step('kill -KILL $$'), captureOutput().sink)).resolves.toEqual({ exitCode: 137, oomKilled: false });
  });

  it('runs steps in /workspace with the container env plus the step env', async () => {
    const out = captureOutput();
    const result = await backend.exec(
      shared,
      step('pwd; echo "$FROM_CONTAINER $OVERRIDDEN $FROM_STEP"', { env: { OVERRIDDEN: 'step', FROM_STEP: 'step env' } }),
      out.sink,
    );
    expect(result.exitCode).toBe(0);
    expect(out.text('STDOUT')).toBe('/workspace\ncontainer step step env\n');

    const inTmp = captureOutput();
    await backend.exec(shared, step('pwd', { workdir: '/tmp' }), inTmp.sink);
    expect(inTmp.text('STDOUT')).toBe('/tmp\n');
  });

  it('keeps files between the steps of one container', async () => {
    await backend.exec(shared, step('echo kept > state.txt'), captureOutput().sink);
    const out = captureOutput();
    await backend.exec(shared, step('cat /workspace/state.txt'), out.sink);
    expect(out.text('STDOUT')).toBe('kept\n');
  });

  it('delivers every one of 100,000 lines', async () => {
    const splitter = new LineSplitter();
    const lines: string[] = [];
    const result = await backend.exec(shared, step('seq 1 100000'), (stream, data) => {
      expect(stream).toBe('STDOUT');
      lines.push(...splitter.push(data));
    });
    lines.push(...splitter.flush());
    expect(result.exitCode).toBe(0);
    expect(lines).toHaveLength(100_000);
    expect(lines[0]).toBe('1');
    expect(lines[99_999]).toBe('100000');
    expect(lines.every((line, i) => line === String(i + 1))).toBe(true);
  });

  it('keeps each stream complete and in order when a step writes to both line by line', async () => {
    const splitters = { STDOUT: new LineSplitter(), STDERR: new LineSplitter() };
    const lines: Record<OutputStream, string[]> = { STDOUT: [], STDERR: [] };
    const script = 'i=0; while [ $i -lt 5000 ]; do echo "o$i"; echo "e$i" >&2; i=$((i+1)); done';
    const result = await backend.exec(shared, step(script), (stream, data) => {
      lines[stream].push(...splitters[stream].push(data));
    });
    for (const stream of ['STDOUT', 'STDERR'] as const) lines[stream].push(...splitters[stream].flush());
    expect(result.exitCode).toBe(0);
    expect(lines.STDOUT).toEqual(Array.from({ length: 5000 }, (_, i) => `o${i}`));
    expect(lines.STDERR).toEqual(Array.from({ length: 5000 }, (_, i) => `e${i}`));
  });

  it('runs the container with network none: only the loopback interface exists', async () => {
    const out = captureOutput();
    await backend.exec(shared, step('ls /sys/class/net'), out.sink);
    expect(out.text('STDOUT').trim().split(/\s+/)).toEqual(['lo']);
    const info = await docker.getContainer(shared.id).inspect();
    expect(info.HostConfig.NetworkMode).toBe('none');
  });

  it('creates the container with the labels, limits and hardening of the spec', async () => {
    const info = await docker.getContainer(shared.id).inspect();
    expect(info.Config.Labels).toMatchObject({ 'kiln.test': String(process.pid) });
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges']);
    expect(info.HostConfig.Init).toBe(true);
    expect(info.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    // Nothing from the host: only the anonymous volumes of the writable directories.
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    expect(info.Mounts.map((m) => [m.Type, m.Destination]).sort()).toEqual([['volume', '/tmp'], ['volume', '/workspace']]);
    const out = captureOutput();
    await backend.exec(shared, step('grep -E "^Cap(Eff|Bnd):" /proc/self/status'), out.sink);
    expect(out.text('STDOUT')).toMatch(/CapBnd:\s+0+\n/);
    expect(out.text('STDOUT')).toMatch(/CapEff:\s+0+\n/);
  });

  it('stops waiting and rejects with an AbortError when the signal fires', async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 300);
    const running = backend.exec(shared, step('echo started; sleep 30'), captureOutput().sink, controller.signal);
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5_000);

    const already = AbortSignal.abort();
    await expect(backend.exec(shared, step('true'), captureOutput().sink, already)).rejects.toMatchObject({
      name: 'AbortError',
    });
  });

  it('fails the step when the sink throws, instead of crashing the process', async () => {
    const boom = new Error('sink is full');
    await expect(
      backend.exec(shared, step('echo hello'), () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
  });

  it('fails fast with a clear message when the image is missing and cannot be pulled', async () => {
    const started = Date.now();
    await expect(backend.prepare(testContainerConfig({ image: UNPULLABLE_IMAGE }))).rejects.toThrow(
      `image "${UNPULLABLE_IMAGE}" is not available locally and could not be pulled: `,
    );
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('destroys idempotently: twice, and for an id the engine never knew', async () => {
    const handle = await startContainer();
    await backend.destroy(handle);
    await expect(docker.getContainer(handle.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(backend.destroy(handle)).resolves.toBeUndefined();
    await expect(backend.destroy({ id: 'kiln-test-no-such-container' })).resolves.toBeUndefined();
  });

  it('destroys a container that was prepared but never started', async () => {
    const handle = await backend.prepare(testContainerConfig());
    created.push(handle);
    await backend.destroy(handle);
    await expect(docker.getContainer(handle.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('destroys concurrently: every call resolves, and only once the container is gone', async () => {
    const handle = await startContainer();
    await expect(Promise.all([1, 2, 3].map(() => backend.destroy(handle)))).resolves.toHaveLength(3);
    await expect(docker.getContainer(handle.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  describe('stopping a step', () => {
    /** Runs `command` in a fresh container and aborts it once it printed `started`. */
    async function abortOnceStarted(graceMs: number, command: string) {
      const graceful = new DockerBackend(docker, { stopGraceMs: graceMs });
      const handle = await graceful.prepare(testContainerConfig());
      created.push(handle);
      await graceful.start(handle);
      const out = captureOutput();
      const controller = new AbortController();
      let abortedAt = 0;
      const running = graceful.exec(handle, step(command), (stream, data) => {
        out.sink(stream, data);
        if (abortedAt === 0 && out.text('STDOUT').includes('started')) {
          abortedAt = Date.now();
          controller.abort();
        }
      }, controller.signal);
      await expect(running).rejects.toMatchObject({ name: 'AbortError' });
      return { out, elapsedMs: Date.now() - abortedAt, handle };
    }

    it('sends SIGTERM first and still delivers what the step prints while it shuts down', async () => {
      const { out, elapsedMs } = await abortOnceStarted(20_000, 'trap "echo got TERM; exit 7" TERM; echo started; sleep 100 & wait $!');
      expect(out.text('STDOUT')).toBe('started\ngot TERM\n');
      // Well under the grace period: the step ended on SIGTERM, nothing waited for SIGKILL.
      expect(elapsedMs).toBeLessThan(10_000);
    });

    it('kills a step that ignores SIGTERM once the grace period is over', async () => {
      const { out, elapsedMs, handle } = await abortOnceStarted(1_500, 'trap "echo ignoring TERM" TERM; echo started; while :; do sleep 1; done');
      expect(out.text('STDOUT')).toContain('ignoring TERM');
      expect(elapsedMs).toBeGreaterThanOrEqual(1_400);
      expect(elapsedMs).toBeLessThan(15_000);
      expect((await docker.getContainer(handle.id).inspect()).State.Running).toBe(false);
    });
  });

  it('stops reading while the sink applies back-pressure, and loses nothing', async () => {
    const splitter = new LineSplitter();
    const lines: string[] = [];
    let waiting = false;
    let bytesWhileWaiting = 0;
    let maxBytesWhileWaiting = 0;
    const result = await backend.exec(shared, step('seq 1 200000'), (_stream, data) => {
      lines.push(...splitter.push(data));
      if (waiting) {
        bytesWhileWaiting += data.length;
        maxBytesWhileWaiting = Math.max(maxBytesWhileWaiting, bytesWhileWaiting);
        return undefined;
      }
      waiting = true;
      bytesWhileWaiting = 0;
      return new Promise<void>((resolve) => setTimeout(() => {
        waiting = false;
        resolve();
      }, 5));
    });
    lines.push(...splitter.flush());
    expect(result.exitCode).toBe(0);
    expect(lines).toHaveLength(200_000);
    expect(lines.every((line, i) => line === String(i + 1))).toBe(true);
    // Only what had already arrived in the same read is delivered while the sink is busy.
    expect(maxBytesWhileWaiting).toBeLessThan(1024 * 1024);
  });

  it('copies a tar archive into the container and a path back out as a tar archive', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-copy-'));
    try {
      await mkdir(path.join(dir, 'sub'));
      await writeFile(path.join(dir, 'sub', 'hello.txt'), 'hello from the host\n');
      // The directory must exist, as with `docker cp`.
      await backend.exec(shared, step('mkdir -p /workspace/copied'), captureOutput().sink);
      await backend.copyIn(shared, '/workspace/copied', spawn('tar', ['-c', '-f', '-', '-C', dir, '.']).stdout as Readable);
      const out = captureOutput();
      await backend.exec(shared, step('cat /workspace/copied/sub/hello.txt'), out.sink);
      expect(out.text('STDOUT')).toBe('hello from the host\n');

      const back = await backend.copyOut(shared, '/workspace/copied/sub');
      const chunks: Buffer[] = [];
      for await (const chunk of back!) chunks.push(chunk as Buffer);
      const archive = Buffer.concat(chunks);
      expect(archive.subarray(0, 100).toString().replace(/\0.*$/s, '')).toBe('sub/');
      expect(archive.toString('latin1')).toContain('hello from the host');
      await expect(backend.copyOut(shared, '/workspace/no-such-path')).resolves.toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lists the containers that carry all the given labels', async () => {
    const listed = await backend.list({ 'kiln.test': String(process.pid) });
    expect(listed.map((c) => c.id)).toContain(shared.id);
    expect(listed.find((c) => c.id === shared.id)).toMatchObject({ state: 'running', labels: { 'kiln.test': String(process.pid) } });
    await expect(backend.list({ 'kiln.test': String(process.pid), 'kiln.no-such-label': 'x' })).resolves.toEqual([]);
  });

  it('reports a step killed for lack of memory as out of memory', async () => {
    const handle = await startContainer({ memoryBytes: 32 * 1024 * 1024 });
    const out = captureOutput();
    const result = await backend.exec(handle, step('dd if=/dev/zero of=/dev/null bs=100M count=1'), out.sink);
    expect(result).toEqual({ exitCode: 137, oomKilled: true });
  });
});
