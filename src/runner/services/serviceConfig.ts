import type { ServiceSpec } from '../../jobfile/services.js';
import { ROLE_LABEL } from '../workspace.js';
import type { ContainerConfig } from '../types.js';

/** Label value of `kiln.role` on service containers and on the readiness probe. */
export const SERVICE_ROLE = 'service';
export const PROBE_ROLE = 'service-probe';
/** Label naming the service a container runs (its `name:`). */
export const SERVICE_LABEL = 'kiln.service';
/** Directories a service may write besides /tmp (each a size-capped tmpfs, like the steps'). */
export const SERVICE_WRITABLE_PATHS = ['/run'];
/** The probe runs `nc` now and then: a few processes and a little memory are plenty. */
const PROBE_MEMORY_BYTES = 32 * 1024 * 1024;
const PROBE_PIDS = 32;

/** The network of one attempt of an execution: its services and its steps, and nothing else. */
export function serviceNetworkName(executionId: string, attempt: number): string {
  return `kiln-${executionId}-${attempt}-net`;
}

/**
 * The container of one service, under the same policy as the step container `step` of its
 * attempt (docs/design.md#services): its labels (plus `kiln.role` and `kiln.service`), memory,
 * CPUs, process limit, read-only root, no capabilities, no privileges, the same deadline; its own
 * image, environment and process; on the attempt's network under its name.
 */
export function serviceContainerConfig(step: ContainerConfig, service: ServiceSpec, network: string): ContainerConfig {
  return {
    image: service.image,
    env: { ...service.env },
    labels: { ...step.labels, [ROLE_LABEL]: SERVICE_ROLE, [SERVICE_LABEL]: service.name },
    network,
    networkAliases: [service.name],
    workdir: '/',
    memoryBytes: step.memoryBytes,
    cpus: step.cpus,
    name: step.name === undefined ? undefined : `${step.name}-${service.name}`,
    pidsLimit: step.pidsLimit,
    nofileLimit: step.nofileLimit,
    readOnlyRootfs: step.readOnlyRootfs,
    writablePaths: [...SERVICE_WRITABLE_PATHS, ...(step.writablePaths ?? [])],
    writableMaxBytes: step.writableMaxBytes,
    // The image's own user: a database refuses to run as root, and nothing is shared with the steps.
    user: null,
    maxLifetimeSec: step.maxLifetimeSec,
    service: { command: service.command },
  };
}

/**
 * The readiness probe of an attempt: a small idle container of `image` (KILN_GIT_IMAGE, which has
 * busybox's `nc`) on the attempt's network, from which `tcp:` checks connect, so that a check
 * proves what a step will see: the port open on that network.
 */
export function probeContainerConfig(step: ContainerConfig, image: string, network: string): ContainerConfig {
  return {
    image,
    env: {},
    labels: { ...step.labels, [ROLE_LABEL]: PROBE_ROLE },
    network,
    workdir: '/',
    memoryBytes: PROBE_MEMORY_BYTES,
    cpus: step.cpus,
    name: step.name === undefined ? undefined : `${step.name}-probe`,
    pidsLimit: PROBE_PIDS,
    nofileLimit: step.nofileLimit,
    readOnlyRootfs: true,
    writablePaths: [],
    writableMaxBytes: 1024 * 1024,
    user: null,
    maxLifetimeSec: step.maxLifetimeSec,
  };
}

/** The command a `tcp:` check runs in the probe: connect, then close at once (busybox nc). */
export function tcpProbeCommand(address: string, port: number): string {
  return `nc -w 1 ${address} ${port} -e true`;
}
