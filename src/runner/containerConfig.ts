import type { ExecutionPlan } from '../jobfile/types.js';
import { INSTALLATION_LABEL } from './installation.js';
import { DEADLINE_LABEL } from './reaper.js';
import type { RunnerSettings } from './settings.js';
import type { ContainerConfig } from './types.js';

/** The job asks for something this server does not allow; the execution fails with the reason. */
export class RunRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunRefusedError';
  }
}

/** Slack between the run's own deadline and the one its container carries: the worker acts first. */
export const DEADLINE_SLACK_MS = 60_000;

/** Which attempt of which execution a container is for. */
export interface ContainerOwner {
  executionId: string;
  jobId: string;
  attempt: number;
  workerId: string;
  installationId: string;
}

function gib(bytes: number): string {
  return bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3}g` : `${Math.round(bytes / 1024 ** 2)}m`;
}

/**
 * The CPU and memory limits of a run: the job's own, or the server's defaults. A job asking for
 * more than the server's maximum is refused rather than silently given less.
 */
export function limitsFor(resources: ExecutionPlan['resources'], settings: RunnerSettings): { cpus: number; memoryBytes: number } {
  const cpus = resources.cpus ?? settings.defaultCpus;
  const memoryBytes = resources.memoryBytes ?? settings.defaultMemoryBytes;
  if (cpus > settings.maxCpus) throw new RunRefusedError(`resources.cpus ${cpus} exceeds this server's maximum of ${settings.maxCpus} (KILN_MAX_CPUS)`);
  if (memoryBytes > settings.maxMemoryBytes) {
    throw new RunRefusedError(`resources.memory ${gib(memoryBytes)} exceeds this server's maximum of ${gib(settings.maxMemoryBytes)} (KILN_MAX_MEMORY)`);
  }
  return { cpus, memoryBytes };
}

/**
 * Labels that let a reaper find the container and tell whose it is (docs/design.md#containers), plus
 * the installation (so another Kiln sharing the engine leaves it alone) and its deadline.
 */
export function containerLabels(owner: ContainerOwner, deadline: number): Record<string, string> {
  return {
    kiln: 'true',
    'kiln.execution': owner.executionId,
    'kiln.job': owner.jobId,
    'kiln.attempt': String(owner.attempt),
    'kiln.worker': owner.workerId,
    [INSTALLATION_LABEL]: owner.installationId,
    [DEADLINE_LABEL]: String(deadline),
  };
}

/**
 * The container of one attempt: the plan under the server's policy. `startedAt` is when the run
 * began; the container's deadline (and lifetime, its own backstop) is the job's timeout from
 * then, plus the stop grace and some slack.
 */
export function containerConfigFor(plan: ExecutionPlan, owner: ContainerOwner, settings: RunnerSettings, startedAt: number): ContainerConfig {
  if (plan.network === 'bridge' && !settings.allowBridge) {
    throw new RunRefusedError('network: bridge is not allowed on this server (KILN_ALLOW_BRIDGE); jobs run with network none');
  }
  const limits = limitsFor(plan.resources, settings);
  const lifetimeMs = plan.timeoutMs + settings.stopGraceMs + DEADLINE_SLACK_MS;
  return {
    image: plan.image,
    env: plan.env,
    labels: containerLabels(owner, startedAt + lifetimeMs),
    network: plan.network,
    workdir: plan.workdir,
    // Shared with the checkout container (docs/design.md#sandboxed-checkout).
    ...(plan.repository !== null ? { workdirVolume: { name: `kiln-${owner.executionId}-${owner.attempt}-workspace` } } : {}),
    memoryBytes: limits.memoryBytes,
    cpus: limits.cpus,
    name: `kiln-${owner.executionId}-${owner.attempt}`,
    pidsLimit: settings.pidsLimit,
    nofileLimit: settings.nofileLimit,
    readOnlyRootfs: settings.readOnlyRootfs,
    writablePaths: settings.writablePaths,
    writableMaxBytes: settings.writableMaxBytes,
    user: settings.user,
    maxLifetimeSec: lifetimeMs / 1000,
  };
}
