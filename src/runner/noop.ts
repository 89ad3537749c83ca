import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type {
  ContainerBackend,
  ContainerHandle,
  ContainerConfig,
  ContainerSummary,
  OutputSink,
  StepCommand,
  StepResult,
} from './types.js';

/**
 * Runs steps without Docker, for benchmarks and scheduler tests where timing, not containers,
 * is the point (KILN_EXECUTOR=noop). A step is `;`-separated commands of which two are
 * simulated — `sleep <seconds>` waits (abortable) and `exit <code>` ends with that code — and
 * every other command succeeds at once with no output.
 */
export class NoopBackend implements ContainerBackend {
  readonly description: string = 'the noop executor';
  private next = 0;

  async prepare(_spec: ContainerConfig, _signal?: AbortSignal): Promise<ContainerHandle> {
    return { id: `noop-${++this.next}` };
  }

  async start(_handle: ContainerHandle): Promise<void> {}

  async copyIn(_handle: ContainerHandle, _dir: string, tar: Readable): Promise<void> {
    tar.resume(); // drained: nothing keeps the files
  }

  async exec(_handle: ContainerHandle, step: StepCommand, _sink: OutputSink, signal?: AbortSignal): Promise<StepResult> {
    signal?.throwIfAborted();
    for (const command of step.command.split(';')) {
      const sleep = /^\s*sleep\s+(\d+(?:\.\d+)?)\s*$/.exec(command);
      if (sleep) await delay(Number(sleep[1]) * 1000, undefined, { signal });
      const exit = /^\s*exit\s+(\d+)\s*$/.exec(command);
      if (exit) return { exitCode: Number(exit[1]), oomKilled: false };
    }
    return { exitCode: 0, oomKilled: false };
  }

  async copyOut(_handle: ContainerHandle, _path: string): Promise<Readable | null> {
    return null;
  }

  async destroy(_handle: ContainerHandle): Promise<void> {}

  async list(_labels: Record<string, string>): Promise<ContainerSummary[]> {
    return [];
  }

  async ping(): Promise<void> {}
}
