import Dockerode from 'dockerode';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type {
  ContainerBackend,
  ContainerHandle,
  ContainerSpec,
  OutputSink,
  OutputStream,
  StepCommand,
} from '../types.js';
import { toCreateOptions, toEnvList } from './convert.js';

/** Tuning of a {@link DockerBackend}; every wait it makes is bounded by one of these. */
export interface DockerBackendOptions {
  /** Longest a pull of a missing image may take, progress included (default 10 min). */
  pullTimeoutMs?: number;
  /** Longest `ping` waits for the engine (default 5 s). */
  pingTimeoutMs?: number;
  /**
   * After a step's output has ended, how long to wait for the engine to report the exit
   * code (default 5 s). The engine may close the stream a moment before it records it.
   */
  exitCodeTimeoutMs?: number;
  /** When another call is already removing the container, how long to wait for it (default 30 s). */
  removeTimeoutMs?: number;
}

/** The step (or operation) stopped because its AbortSignal fired; `cause` is the signal's reason. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/**
 * The image is neither present on the engine nor pullable. A property of the job (a typo,
 * a private image), not of the worker: retrying on another worker will not help.
 */
export class ImageUnavailableError extends Error {
  constructor(readonly image: string, reason: string, options?: { cause?: unknown }) {
    super(`image "${image}" is not available locally and could not be pulled: ${reason}`, options);
    this.name = 'ImageUnavailableError';
  }
}

const DEFAULTS: Required<DockerBackendOptions> = {
  pullTimeoutMs: 10 * 60_000,
  pingTimeoutMs: 5_000,
  exitCodeTimeoutMs: 5_000,
  removeTimeoutMs: 30_000,
};

/**
 * ContainerBackend on a Docker engine, through dockerode. One long-lived container per
 * execution whose main process only waits; each step is an exec of `sh -c` in it, with
 * stdout and stderr demultiplexed and delivered raw to the sink.
 */
export class DockerBackend implements ContainerBackend {
  readonly docker: Dockerode;
  private readonly options: Required<DockerBackendOptions>;

  /**
   * @param docker a client, or options for one; by default dockerode's own defaults, which
   *   honour DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), else the local socket.
   */
  constructor(docker?: Dockerode | Dockerode.DockerOptions, options: DockerBackendOptions = {}) {
    this.docker = docker instanceof Dockerode ? docker : new Dockerode(docker);
    this.options = { ...DEFAULTS, ...options };
  }

  async prepare(spec: ContainerSpec): Promise<ContainerHandle> {
    await this.ensureImage(spec.image);
    const container = await this.docker.createContainer(toCreateOptions(spec));
    return { id: container.id };
  }

  async start(handle: ContainerHandle): Promise<void> {
    try {
      await this.docker.getContainer(handle.id).start();
    } catch (err) {
      if (statusOf(err) !== 304) throw err; // 304: already started
    }
  }

  async exec(
    handle: ContainerHandle,
    step: StepCommand,
    sink: OutputSink,
    signal?: AbortSignal,
  ): Promise<{ exitCode: number }> {
    throwIfAborted(signal);
    try {
      const exec = await this.docker.getContainer(handle.id).exec({
        Cmd: ['sh', '-c', step.command],
        AttachStdin: false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Env: toEnvList(step.env),
        WorkingDir: step.workdir,
        ...(signal ? { abortSignal: signal } : {}),
      });
      const stream = await exec.start({
        hijack: true,
        stdin: false,
        Detach: false,
        Tty: false,
        ...(signal ? { abortSignal: signal } : {}),
      });
      await this.deliver(stream, sink, signal);
      return { exitCode: await this.exitCodeOf(exec, signal) };
    } catch (err) {
      if (signal?.aborted) throw abortErrorOf(signal);
      throw err;
    }
  }

  async destroy(handle: ContainerHandle): Promise<void> {
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

  /** Pulls the image only when it is not present locally. */
  private async ensureImage(image: string): Promise<void> {
    if (await this.hasImage(image)) return;
    try {
      await this.pull(image);
    } catch (err) {
      throw new ImageUnavailableError(image, messageOf(err), { cause: err });
    }
    if (!(await this.hasImage(image))) {
      throw new ImageUnavailableError(image, 'the pull ended but the engine still has no such image');
    }
  }

  private async hasImage(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }

  private async pull(image: string): Promise<void> {
    const timeout = AbortSignal.timeout(this.options.pullTimeoutMs);
    const stream = await this.docker.pull(image, { abortSignal: timeout });
    // Errors met after the pull started arrive as progress objects, not as stream errors,
    // and an aborted stream just closes: both must be checked once it is over.
    const output = await new Promise<Array<{ error?: string; errorDetail?: { message?: string } }>>(
      (resolve, reject) => {
        this.docker.modem.followProgress(stream, (err, result) => (err ? reject(err) : resolve(result)));
      },
    );
    if (timeout.aborted) throw new Error(`the pull did not finish within ${this.options.pullTimeoutMs} ms`);
    const failure = output.find((event) => event.error !== undefined || event.errorDetail !== undefined);
    if (failure) throw new Error(failure.errorDetail?.message ?? failure.error ?? 'the pull failed');
  }

  /**
   * Demultiplexes the exec's stream into the sink and resolves when the stream has ended
   * (demuxStream never ends anything itself). A throwing sink fails the step instead of
   * escaping from a socket event handler.
   */
  private deliver(stream: Duplex, sink: OutputSink, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        stream.removeListener('end', onEnd);
        stream.removeListener('close', onEnd);
        stream.removeListener('error', finish);
        // After a normal end this only releases the socket; otherwise it stops the transfer.
        stream.destroy();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onEnd = (): void => finish();
      const onAbort = (): void => finish(abortErrorOf(signal!));
      const to = (name: OutputStream): NodeJS.WritableStream =>
        // demuxStream only calls write(); a whole Writable would add buffering for nothing.
        ({
          write(data: Buffer): boolean {
            if (settled) return true;
            try {
              sink(name, data);
            } catch (err) {
              finish(err);
            }
            return true;
          },
        }) as unknown as NodeJS.WritableStream;

      stream.once('end', onEnd);
      stream.once('close', onEnd);
      stream.once('error', finish);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.docker.modem.demuxStream(stream, to('STDOUT'), to('STDERR'));
      if (signal?.aborted) onAbort();
    });
  }

  private async exitCodeOf(exec: Dockerode.Exec, signal?: AbortSignal): Promise<number> {
    const deadline = Date.now() + this.options.exitCodeTimeoutMs;
    let pause = 5;
    for (;;) {
      const info = await exec.inspect(signal ? { abortSignal: signal } : {});
      if (!info.Running && typeof info.ExitCode === 'number') return info.ExitCode;
      if (Date.now() >= deadline) {
        throw new Error(
          `exec ${exec.id}: output ended but the engine reported no exit code within ${this.options.exitCodeTimeoutMs} ms`,
        );
      }
      await delay(pause, undefined, signal ? { signal } : {});
      pause = Math.min(pause * 2, 100);
    }
  }
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortErrorOf(signal);
}

function abortErrorOf(signal: AbortSignal): AbortError {
  return new AbortError('the step was aborted', { cause: signal.reason });
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The engine's own words, without dockerode's "(HTTP code 500) server error - " prefix. */
function messageOf(err: unknown): string {
  const json = (err as { json?: { message?: unknown } } | null)?.json;
  if (json && typeof json.message === 'string') return json.message.trim();
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

function describeEngine(docker: Dockerode): string {
  const modem = docker.modem as unknown as { socketPath?: unknown; host?: string; port?: string | number };
  if (typeof modem.socketPath === 'string') return `socket ${modem.socketPath}`;
  return modem.host ? `${modem.host}:${modem.port ?? ''}` : 'default engine';
}
