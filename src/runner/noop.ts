import type { ContainerBackend, ContainerHandle, ContainerSpec, OutputSink, StepCommand } from './types.js';

/**
 * Completes every step at once with exit code 0 and no output, without Docker. For benchmarks
 * and scheduler tests where timing, not containers, is the point (KILN_EXECUTOR=noop).
 */
export class NoopBackend implements ContainerBackend {
  private next = 0;

  async prepare(_spec: ContainerSpec): Promise<ContainerHandle> {
    return { id: `noop-${++this.next}` };
  }

  async start(_handle: ContainerHandle): Promise<void> {}

  async exec(_handle: ContainerHandle, _step: StepCommand, _sink: OutputSink, signal?: AbortSignal): Promise<{ exitCode: number }> {
    signal?.throwIfAborted();
    return { exitCode: 0 };
  }

  async destroy(_handle: ContainerHandle): Promise<void> {}

  async ping(): Promise<void> {}
}
