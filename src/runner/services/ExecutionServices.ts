import type { ServiceSpec } from '../../jobfile/services.js';
import type { PullAccess } from '../registryAccess.js';
import type { ContainerBackend, ContainerConfig, ContainerHandle, OutputStream, ServiceEngine } from '../types.js';
import { ServiceError, describeCheck, waitUntilReady, type NotReady } from './readiness.js';
import { probeContainerConfig, serviceContainerConfig, serviceNetworkName, tcpProbeCommand } from './serviceConfig.js';

/** Last lines of a service quoted in the error of a run it failed (every line kept goes to the log). */
const ERROR_LINES = 5;

/** Where a service's output goes (the build log's SERVICE stream: logs/serviceOutput.ts). */
export interface ServiceOutputSink {
  push(stream: OutputStream, data: Buffer): void;
  /** The output ended: what is held back goes out. */
  end(): void;
  /** Its last lines, oldest first. */
  lastLines(): string[];
}

/** What starting the services of one attempt needs. */
export interface ServicesOfRun {
  backend: ContainerBackend;
  /** The attempt's step container, not created yet: its labels and limits are the services'. */
  step: ContainerConfig;
  executionId: string;
  attempt: number;
  services: ServiceSpec[];
  /** KILN_GIT_IMAGE: the readiness probe's image (busybox `nc`). */
  probeImage: string;
  /** Writes one of Kiln's own lines to the build log. */
  system: (text: string) => void;
  outputOf: (service: string) => ServiceOutputSink;
  /** Who may pull a service's image, as for the steps' (docs/design.md#local-privacy). */
  accessFor: (image: string) => PullAccess | undefined;
}

interface Running {
  spec: ServiceSpec;
  handle: ContainerHandle;
  output: ServiceOutputSink;
  address: string | null;
  startedAt: number;
}

/**
 * The services of one attempt (docs/design.md#services): its own internal network, one container
 * per service on it, their output followed into the log, their readiness awaited, and all of it
 * removed by `destroy` (idempotent; the reaper and the next attempt find leftovers by label).
 */
export class ExecutionServices {
  readonly network: string;
  private readonly engine: ServiceEngine;
  private readonly running: Running[] = [];
  private readonly handles: ContainerHandle[] = [];
  private probe: ContainerHandle | null = null;
  private readonly following = new AbortController();
  private readonly followed: Promise<void>[] = [];
  private networkCreated = false;

  constructor(private readonly run: ServicesOfRun) {
    if (run.backend.services === undefined) throw new ServiceError(`${run.backend.description} cannot run services`);
    this.engine = run.backend.services;
    this.network = serviceNetworkName(run.executionId, run.attempt);
  }

  /**
   * Creates the network and starts every service on it; resolves with the `name:address` lines the
   * step container's /etc/hosts needs (an engine without iptables serves no DNS on its networks).
   */
  async start(signal: AbortSignal): Promise<string[]> {
    const { backend, step, system } = this.run;
    await this.engine.createNetwork(this.network, step.labels);
    this.networkCreated = true;
    for (const spec of this.run.services) {
      signal.throwIfAborted();
      const config = serviceContainerConfig(step, spec, this.network);
      system(`service "${spec.name}": starting ${spec.image}`);
      const handle = await backend.prepare(config, signal, this.run.accessFor(spec.image));
      this.handles.push(handle);
      await backend.start(handle);
      const output = this.run.outputOf(spec.name);
      // The engine's log of the container from its start, so nothing is lost by following after it.
      this.followed.push(
        this.engine.followLogs(handle, (stream, data) => output.push(stream, data), this.following.signal).then(
          () => output.end(),
          () => output.end(),
        ),
      );
      // None when it stopped already (a bad command): ready() then says how it ended.
      const address = await this.engine.addressOf(handle, this.network);
      this.running.push({ spec, handle, output, address, startedAt: Date.now() });
    }
    if (this.run.services.some((s) => s.ready !== null && 'tcp' in s.ready)) {
      this.probe = await backend.prepare(probeContainerConfig(step, this.run.probeImage, this.network), signal);
      this.handles.push(this.probe);
      await backend.start(this.probe);
    }
    return this.running.filter((r) => r.address !== null).map((r) => `${r.spec.name}:${r.address}`);
  }

  /** Resolves once every service passed its check; throws a ServiceError naming the first that did not. */
  async ready(signal: AbortSignal): Promise<void> {
    const waits = this.running.map(async (r) => {
      const notReady = await waitUntilReady(r.spec.ready, { attempt: (ms, s) => this.check(r, ms, s), state: () => this.engine.state(r.handle) }, r.startedAt, signal);
      if (notReady !== null) throw await this.notReady(r, notReady);
      this.run.system(`service "${r.spec.name}" is ready (${describeCheck(r.spec.ready)}, ${Date.now() - r.startedAt} ms)`);
    });
    const settled = await Promise.allSettled(waits);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** One try of a service's check: `tcp` from the probe container, `run` as an exec in the service. */
  private async check(r: Running, budgetMs: number, signal: AbortSignal): Promise<boolean> {
    const check = r.spec.ready;
    if (check === null) return true;
    if (r.address === null) return false;
    const [handle, command] = 'tcp' in check ? [this.probe!, tcpProbeCommand(r.address, check.tcp)] : [r.handle, check.run];
    const result = await this.run.backend.exec(handle, { command, env: {}, workdir: '/' }, () => undefined, AbortSignal.any([signal, AbortSignal.timeout(budgetMs)]));
    return result.exitCode === 0;
  }

  /** The error of a service that did not get ready, with its last lines in the log and (a few) in the message. */
  private async notReady(r: Running, why: NotReady): Promise<ServiceError> {
    await this.stopFollowing(r);
    const lines = r.output.lastLines();
    const { name, ready } = r.spec;
    const what =
      why.kind === 'exited'
        ? `service "${name}" stopped${why.exitCode !== null ? ` with exit code ${why.exitCode}` : ''} before it was ready`
        : `service "${name}" was not ready within ${(ready?.timeoutMs ?? 0) / 1000} s (${describeCheck(ready)})`;
    this.run.system(lines.length === 0 ? `${what}; it printed nothing` : `${what}; its last ${lines.length} lines:`);
    for (const line of lines) this.run.system(`[${name}] ${line}`);
    const quoted = lines.slice(-ERROR_LINES).map((l) => JSON.stringify(l));
    return new ServiceError(quoted.length === 0 ? `${what}; it printed nothing` : `${what}; its last lines: ${quoted.join(' / ')}`);
  }

  /** Lets the log of a stopped service drain (briefly), so its last lines are there to quote. */
  private async stopFollowing(r: Running): Promise<void> {
    const index = this.running.indexOf(r);
    const state = await this.engine.state(r.handle).catch(() => ({ running: true }));
    if (!state.running) await Promise.race([this.followed[index], new Promise((resolve) => setTimeout(resolve, 1000))]);
  }

  /** Removes the probe, every service and the network; idempotent. Throws when something could not be removed. */
  async destroy(): Promise<void> {
    this.following.abort();
    const errors: string[] = [];
    for (const handle of this.handles.splice(0)) {
      await this.run.backend.destroy(handle).catch((err: Error) => errors.push(err.message));
    }
    await Promise.allSettled(this.followed);
    if (this.networkCreated) {
      await this.engine.removeNetwork(this.network).then(
        () => {
          this.networkCreated = false;
        },
        (err: Error) => errors.push(err.message),
      );
    }
    if (errors.length > 0) throw new Error(`services of execution ${this.run.executionId}: ${errors.join('; ')}`);
  }
}

/** Removes the networks of attempts of `executionId` before `attempt` (their containers go by label). */
export async function removeEarlierNetworks(backend: ContainerBackend, executionId: string, attempt: number): Promise<void> {
  const engine = backend.services;
  if (engine === undefined) return;
  for (let earlier = 1; earlier < attempt; earlier++) await engine.removeNetwork(serviceNetworkName(executionId, earlier));
}
