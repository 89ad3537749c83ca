import Dockerode from 'dockerode';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { RegistryCredentials } from '../settings.js';
import type {
  ContainerBackend,
  ContainerHandle,
  ContainerConfig,
  ContainerSummary,
  OutputSink,
  OutputStream,
  StepCommand,
  StepResult,
} from '../types.js';
import { toCreateOptions, toEnvList } from './convert.js';
import { ensureImage, messageOf, statusOf } from './images.js';
import { DockerServiceEngine } from './services.js';
import { InfrastructureError } from '../infrastructure.js';
import type { PullAccess } from '../registryAccess.js';

export { ImageUnavailableError } from './images.js';

/** Tuning of a {@link DockerBackend}; every wait it makes is bounded by one of these. */
export interface DockerBackendOptions {
  /** Longest a pull of a missing image may take, progress included (default 10 min). */
  pullTimeoutMs?: number;
  /** Registry host -> credentials used to pull missing images (default none). */
  registryAuth?: Readonly<Record<string, RegistryCredentials>>;
  /** Longest `ping` waits for the engine (default 5 s). */
  pingTimeoutMs?: number;
  /**
   * After a step's output has ended, how long to wait for the engine to report the exit
   * code (default 5 s). The engine may close the stream a moment before it records it.
   */
  exitCodeTimeoutMs?: number;
  /** When another call is already removing the container, how long to wait for it (default 30 s). */
  removeTimeoutMs?: number;
  /** When a step is stopped: how long its processes get between SIGTERM and SIGKILL (default 10 s). */
  stopGraceMs?: number;
}

/** The step (or operation) stopped because its AbortSignal fired; `cause` is the signal's reason. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

const DEFAULTS: Required<DockerBackendOptions> = {
  pullTimeoutMs: 10 * 60_000,
  registryAuth: {},
  pingTimeoutMs: 5_000,
  exitCodeTimeoutMs: 5_000,
  removeTimeoutMs: 30_000,
  stopGraceMs: 10_000,
};

/** After SIGKILL, how long the engine gets to close a step's output before Kiln drops it. */
const KILL_SETTLE_MS = 5_000;
/** How long a step killed by a signal is watched for its container stopping too (an engine shutting down). */
const SIGNAL_EXIT_SETTLE_MS = 3_000;
/** Exit status of a process killed by SIGKILL, which is what the kernel's OOM killer sends. */
const SIGKILL_STATUS = 137;

/**
 * ContainerBackend on a Docker engine, through dockerode. One long-lived container per
 * execution whose main process only waits; each step is an exec of `sh -c` in it, with
 * stdout and stderr demultiplexed and delivered raw to the sink.
 */
export class DockerBackend implements ContainerBackend {
  readonly docker: Dockerode;
  readonly services: DockerServiceEngine;
  private readonly options: Required<DockerBackendOptions>;

  /**
   * @param docker a client, or options for one; by default dockerode's own defaults, which
   *   honour DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), else the local socket.
   */
  constructor(docker?: Dockerode | Dockerode.DockerOptions, options: DockerBackendOptions = {}) {
    this.docker = docker instanceof Dockerode ? docker : new Dockerode(docker);
    this.services = new DockerServiceEngine(this.docker);
    this.options = { ...DEFAULTS, ...options };
  }

  get description(): string {
    return `the Docker engine at ${engineAddress(this.docker)}`;
  }

  async prepare(spec: ContainerConfig, signal?: AbortSignal, access?: PullAccess): Promise<ContainerHandle> {
    const image = await ensureImage(this.docker, spec.image, { timeoutMs: this.options.pullTimeoutMs, auth: this.options.registryAuth, access, signal });
    const container = await this.docker.createContainer(toCreateOptions(spec));
    // What steps run as: the configured user, else the image's USER.
    return { id: container.id, user: spec.user || image.user };
  }

  async start(handle: ContainerHandle): Promise<void> {
    try {
      await this.docker.getContainer(handle.id).start();
    } catch (err) {
      if (statusOf(err) !== 304) throw err; // 304: already started
    }
  }

  async copyIn(handle: ContainerHandle, dir: string, tar: Readable): Promise<void> {
    // The engine unpacks through its own view of the container's filesystem, so a path in the
    // archive can never land outside the container.
    await this.docker.getContainer(handle.id).putArchive(tar as unknown as NodeJS.ReadableStream, { path: dir });
  }

  async exec(handle: ContainerHandle, step: StepCommand, sink: OutputSink, signal?: AbortSignal): Promise<StepResult> {
    throwIfAborted(signal);
    const container = this.docker.getContainer(handle.id);
    const startedAt = Date.now();
    let exec: Dockerode.Exec;
    let stream: Duplex;
    try {
      exec = await container.exec({
        Cmd: ['sh', '-c', step.command],
        AttachStdin: false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Env: toEnvList(step.env),
        WorkingDir: step.workdir,
      });
      stream = await exec.start({ hijack: true, stdin: false, Detach: false, Tty: false });
    } catch (err) {
      if (signal?.aborted) throw abortErrorOf(signal);
      throw err;
    }
    const delivered = this.deliver(stream, sink);
    let stopping: Promise<void> | null = null;
    const onAbort = (): void => {
      stopping ??= this.stopGracefully(container, delivered, stream);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    let exitCode: number;
    try {
      try {
        await delivered;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
      if (stopping !== null) {
        await stopping;
        throw abortErrorOf(signal!);
      }
      exitCode = await this.exitCodeOf(exec);
    } catch (err) {
      if (err instanceof AbortError) throw err;
      await this.assertRunning(container, err);
      throw err;
    }
    // A step killed because its container went away (the engine restarted, someone removed it)
    // says nothing about the build: the container's idle init only stops when it is stopped.
    if (exitCode !== 0) await this.assertRunning(container, null, exitCode > 128 ? SIGNAL_EXIT_SETTLE_MS : 0);
    const oomKilled = exitCode === SIGKILL_STATUS && (await this.oomSince(handle.id, startedAt));
    return { exitCode, oomKilled };
  }

  /**
   * Throws an InfrastructureError when the container is gone, stopped, or the engine does not
   * answer, now or within `settleMs`: an engine that shuts down kills the steps' processes a moment
   * before it stops their container, so a step killed by a signal is watched a little longer.
   */
  private async assertRunning(container: Dockerode.Container, cause: unknown, settleMs = 0): Promise<void> {
    const deadline = Date.now() + settleMs;
    for (;;) {
      let running: boolean;
      try {
        running = (await container.inspect()).State.Running === true;
      } catch (err) {
        const why = statusOf(err) === 404 ? 'the container disappeared' : `the Docker engine does not answer (${messageOf(err)})`;
        throw new InfrastructureError(`${why} while a step ran`, { cause: cause ?? err });
      }
      if (!running) {
        throw new InfrastructureError('the container stopped while a step ran (was the Docker engine restarted?)', { cause });
      }
      if (Date.now() >= deadline) return;
      await delay(250);
    }
  }

  async copyOut(handle: ContainerHandle, path: string): Promise<Readable | null> {
    try {
      return (await this.docker.getContainer(handle.id).getArchive({ path })) as unknown as Readable;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async destroy(handle: ContainerHandle): Promise<void> {
    const volumes = await this.volumesOf(handle.id);
    try {
      await this.docker.getContainer(handle.id).remove({ force: true, v: true });
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) return;
      // Another destroy of the same container is under way; resolving only once the
      // container is gone keeps "destroy resolved" meaning "nothing runs any more".
      if (status === 409 && /already in progress/i.test(messageOf(err))) {
        await this.waitUntilGone(handle.id);
        return;
      }
      throw err;
    }
    await this.removeVolumes(volumes);
  }

  /** The names of the volumes a container mounts; none when it is gone. */
  private async volumesOf(id: string): Promise<string[]> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      return (info.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name as string);
    } catch (err) {
      if (statusOf(err) === 404) return [];
      throw err;
    }
  }

  /**
   * `remove -v` leaves named volumes (a workdir shared with a checkout container): each goes with
   * the last container that mounts it. One still in use (409) is the other container's to remove.
   */
  private async removeVolumes(names: string[]): Promise<void> {
    for (const name of names) {
      try {
        await this.docker.getVolume(name).remove();
      } catch (err) {
        const status = statusOf(err);
        if (status !== 404 && status !== 409) throw err;
      }
    }
  }

  async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
    });
    return containers.map((c) => ({ id: c.Id, labels: c.Labels ?? {}, state: c.State, createdAt: new Date(c.Created * 1000) }));
  }

  async ping(): Promise<void> {
    // dockerode accepts an abortSignal here; its typings do not say so.
    const ping = this.docker.ping.bind(this.docker) as (opts: { abortSignal: AbortSignal }) => Promise<unknown>;
    try {
      await ping({ abortSignal: AbortSignal.timeout(this.options.pingTimeoutMs) });
    } catch (err) {
      throw new Error(`the Docker engine does not answer (${describeEngine(this.docker)}): ${messageOf(err)}`, {
        cause: err,
      });
    }
  }

  /**
   * SIGTERM to every process of the container but its init and idle process (which ignores it),
   * then SIGKILL once the grace period is over. The step's output keeps flowing to the sink
   * meanwhile, so what a process prints while it shuts down is kept. Resolves once the output
   * has ended, or was dropped because the engine did not end it.
   */
  private async stopGracefully(container: Dockerode.Container, delivered: Promise<void>, stream: Duplex): Promise<void> {
    const ended = delivered.then(
      () => true,
      () => true,
    );
    // Fails when the container is at its process limit (a fork bomb): SIGKILL follows anyway.
    await this.signalAll(container, 'TERM').catch(() => undefined);
    if (await settlesWithin(ended, this.options.stopGraceMs)) return;
    await container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    if (await settlesWithin(ended, KILL_SETTLE_MS)) return;
    stream.destroy();
    await ended;
  }

  /** `kill -<signal> -1` inside the container, as the steps' user: every process it may signal. */
  private async signalAll(container: Dockerode.Container, signal: 'TERM'): Promise<void> {
    const exec = await container.exec({ Cmd: ['sh', '-c', `kill -${signal} -1`], AttachStdout: false, AttachStderr: false });
    await exec.start({ Detach: true });
  }

  /** Whether the engine reported an out-of-memory kill in the container since `sinceMs`. */
  private async oomSince(id: string, sinceMs: number): Promise<boolean> {
    // The engine may record the OOM event a moment after the killed process's output ended.
    for (const pause of [0, 200, 800]) {
      if (pause > 0) await delay(pause);
      // Fractional seconds are accepted by the engine; the typings only know whole numbers.
      const stream = (await this.docker.getEvents({
        since: ((sinceMs - 1000) / 1000).toFixed(3),
        until: (Date.now() / 1000).toFixed(3),
        filters: { container: [id], event: ['oom'] },
      } as unknown as Dockerode.GetEventsOptions)) as NodeJS.ReadableStream;
      let text = '';
      for await (const chunk of stream) text += chunk.toString();
      if (text.includes('"oom"')) return true;
    }
    return false;
  }

  private async waitUntilGone(id: string): Promise<void> {
    const deadline = Date.now() + this.options.removeTimeoutMs;
    let pause = 10;
    for (;;) {
      try {
        await this.docker.getContainer(id).inspect();
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw err;
      }
      if (Date.now() >= deadline) {
        throw new Error(`container ${id} is still being removed after ${this.options.removeTimeoutMs} ms`);
      }
      await delay(pause);
      pause = Math.min(pause * 2, 200);
    }
  }

  /**
   * Demultiplexes the exec's stream into the sink and resolves when the stream has ended
   * (demuxStream never ends anything itself). A sink that returns a promise pauses the stream
   * until it settles, so a slow consumer slows the step down instead of filling memory. A
   * throwing (or rejecting) sink fails the step instead of escaping from a socket event handler.
   */
  private deliver(stream: Duplex, sink: OutputSink): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let waiting = 0;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        stream.removeListener('end', onEnd);
        stream.removeListener('close', onEnd);
        stream.removeListener('error', finish);
        // After a normal end this only releases the socket; otherwise it stops the transfer.
        stream.destroy();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onEnd = (): void => finish();
      const to = (name: OutputStream): NodeJS.WritableStream =>
        // demuxStream only calls write(); a whole Writable would add buffering for nothing.
        ({
          write(data: Buffer): boolean {
            if (settled) return true;
            let pending: void | Promise<void>;
            try {
              pending = sink(name, data);
            } catch (err) {
              finish(err);
              return true;
            }
            if (pending) {
              if (waiting++ === 0) stream.pause();
              pending.then(() => {
                if (--waiting === 0 && !settled) stream.resume();
              }, finish);
            }
            return true;
          },
        }) as unknown as NodeJS.WritableStream;

      stream.once('end', onEnd);
      stream.once('close', onEnd);
      stream.once('error', finish);
      this.docker.modem.demuxStream(stream, to('STDOUT'), to('STDERR'));
    });
  }

  private async exitCodeOf(exec: Dockerode.Exec): Promise<number> {
    const deadline = Date.now() + this.options.exitCodeTimeoutMs;
    let pause = 5;
    for (;;) {
      const info = await exec.inspect();
      if (!info.Running && typeof info.ExitCode === 'number') return info.ExitCode;
      if (Date.now() >= deadline) {
        throw new Error(
          `exec ${exec.id}: output ended but the engine reported no exit code within ${this.options.exitCodeTimeoutMs} ms`,
        );
      }
      await delay(pause);
      pause = Math.min(pause * 2, 100);
    }
  }
}

/** True when `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  const result = await Promise.race([promise.then(() => true), delay(ms, false, { signal: timer.signal }).catch(() => false)]);
  timer.abort();
  return result;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortErrorOf(signal);
}

function abortErrorOf(signal: AbortSignal): AbortError {
  return new AbortError('the step was aborted', { cause: signal.reason });
}

/**
 * Where the client reaches the engine, as DOCKER_HOST would say it (`unix:///var/run/docker.sock`,
 * `tcp://10.0.0.5:2376`). With no DOCKER_HOST, dockerode picks ~/.docker/run/docker.sock when it
 * exists (Docker Desktop), else /var/run/docker.sock; so does this, at the moment it is asked.
 */
function engineAddress(docker: Dockerode): string {
  const modem = docker.modem as unknown as { socketPath?: unknown; host?: string; port?: string | number; protocol?: string };
  if (typeof modem.socketPath === 'string') return `unix://${modem.socketPath}`;
  if (modem.host) return `${modem.protocol === 'http' ? 'tcp' : (modem.protocol ?? 'tcp')}://${modem.host}${modem.port ? `:${modem.port}` : ''}`;
  const desktop = path.join(homedir(), '.docker', 'run', 'docker.sock');
  return `unix://${existsSync(desktop) ? desktop : '/var/run/docker.sock'}`;
}

function describeEngine(docker: Dockerode): string {
  const modem = docker.modem as unknown as { socketPath?: unknown; host?: string; port?: string | number };
  if (typeof modem.socketPath === 'string') return `socket ${modem.socketPath}`;
  return modem.host ? `${modem.host}:${modem.port ?? ''}` : 'default engine';
}
