import type Dockerode from 'dockerode';
import type { Duplex } from 'node:stream';
import type { ContainerHandle, ContainerState, OutputSink, ServiceEngine } from '../types.js';
import { messageOf, statusOf } from './images.js';

/**
 * The Docker side of `services:` (docs/design.md#services): one internal bridge network per
 * attempt, the services' addresses on it, their state and their output.
 */
export class DockerServiceEngine implements ServiceEngine {
  constructor(private readonly docker: Dockerode) {}

  async createNetwork(name: string, labels: Record<string, string>): Promise<void> {
    try {
      // `Internal` keeps the engine from routing the network out, but only through iptables rules,
      // which an engine run with --iptables=false does not make: its containers still get a default
      // route via the host, which forwards to other networks. `inhibit_ipv4` gives the host no
      // address on the bridge, so there is no gateway at all: a service or a step on this network
      // reaches the other containers of its attempt and nothing else, on any engine.
      await this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        Internal: true,
        Attachable: false,
        Labels: { ...labels },
        CheckDuplicate: true,
        Options: { 'com.docker.network.bridge.inhibit_ipv4': 'true' },
      });
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // a retried create of this attempt's own network
    }
  }

  async removeNetwork(name: string): Promise<void> {
    const network = this.docker.getNetwork(name);
    let info: { Containers?: Record<string, unknown> };
    try {
      info = (await network.inspect()) as typeof info;
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw err;
    }
    for (const id of Object.keys(info.Containers ?? {})) {
      await network.disconnect({ Container: id, Force: true }).catch(() => undefined);
    }
    try {
      await network.remove();
    } catch (err) {
      if (statusOf(err) !== 404) throw new Error(`cannot remove network ${name}: ${messageOf(err)}`, { cause: err });
    }
  }

  async listNetworks(labels: Record<string, string>): Promise<Array<{ name: string; labels: Record<string, string> }>> {
    const networks = await this.docker.listNetworks({ filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) } });
    return networks.map((n) => ({ name: n.Name, labels: n.Labels ?? {} }));
  }

  async addressOf(handle: ContainerHandle, network: string): Promise<string | null> {
    const info = await this.docker.getContainer(handle.id).inspect();
    const address = info.NetworkSettings?.Networks?.[network]?.IPAddress;
    return address ? address : null;
  }

  async state(handle: ContainerHandle): Promise<ContainerState> {
    try {
      const { State } = await this.docker.getContainer(handle.id).inspect();
      return { running: State.Running === true, exitCode: State.Running ? null : State.ExitCode };
    } catch (err) {
      if (statusOf(err) === 404) return { running: false, exitCode: null };
      throw err;
    }
  }

  async followLogs(handle: ContainerHandle, sink: OutputSink, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const stream = (await this.docker.getContainer(handle.id).logs({ follow: true, stdout: true, stderr: true, abortSignal: signal })) as unknown as Duplex;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        stream.destroy();
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', done);
      const to = (name: 'STDOUT' | 'STDERR') =>
        ({
          write(data: Buffer): boolean {
            void Promise.resolve(sink(name, data)).catch(() => undefined);
            return true;
          },
        }) as unknown as NodeJS.WritableStream;
      this.docker.modem.demuxStream(stream, to('STDOUT'), to('STDERR'));
    });
  }
}
