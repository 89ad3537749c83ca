import type pg from 'pg';
import { INSTALLATION_LABEL } from './installation.js';
import type { ContainerBackend, ContainerSummary } from './types.js';

/** Label with the epoch milliseconds after which a container has no reason to exist. */
export const DEADLINE_LABEL = 'kiln.deadline';

/** What the reaper needs. */
export interface ReaperOptions {
  backend: ContainerBackend;
  pool: pg.Pool;
  /** Only containers labelled with this installation are considered. */
  installationId: string;
  /** This worker's id (label `kiln.worker`). */
  workerId: string;
  /** Whether this process is running the execution now: its container is never touched. */
  runsHere: (executionId: string) => boolean;
  log: (message: string) => void;
  /** While this says no, timed sweeps are skipped: the engine gate has already said the engine is gone. */
  engineUp?: () => boolean;
}

/** A container the reaper removed, and why. */
export interface Reaped {
  id: string;
  executionId: string | undefined;
  reason: string;
}

interface ExecutionRow {
  id: string;
  status: string;
  attempt: number;
  worker_id: string | null;
  lease_live: boolean | null;
}

/**
 * Why a container of this installation should go, or null when it belongs to an attempt that a
 * live worker is running. Pure: the decision is tested without Docker.
 *
 * A container lives exactly as long as its attempt: the execution is RUNNING with the same
 * attempt and worker as its labels say, and that worker's lease is current (a dead worker stops
 * renewing it). The worker's own containers are kept only while it runs them, and none outlives
 * its deadline.
 */
export function orphanReason(
  container: Pick<ContainerSummary, 'labels'>,
  execution: ExecutionRow | undefined,
  ctx: { workerId: string; now: number; runsHere: (executionId: string) => boolean },
): string | null {
  const labels = container.labels;
  const executionId = labels['kiln.execution'];
  const worker = labels['kiln.worker'];
  const deadline = Number(labels[DEADLINE_LABEL]);
  if (executionId === undefined || worker === undefined) return 'it has no execution or worker label';
  if (worker === ctx.workerId) {
    if (ctx.runsHere(executionId)) return null;
    return 'this worker is not running its execution any more';
  }
  if (Number.isFinite(deadline) && ctx.now > deadline) return 'it is past its deadline';
  if (execution === undefined) return 'its execution no longer exists';
  if (execution.status !== 'RUNNING') return `its execution is ${execution.status}`;
  if (String(execution.attempt) !== labels['kiln.attempt']) return `its execution is at attempt ${execution.attempt}`;
  if (execution.worker_id !== worker) return `its execution is run by ${execution.worker_id ?? 'no worker'}`;
  if (execution.lease_live !== true) return `its worker ${worker} is dead (its lease expired)`;
  return null;
}

/**
 * Removes Kiln containers (of this installation) that no live worker runs: left by a worker
 * that died or was fenced, by a destroy that failed, or stuck past their deadline. Runs once at
 * worker start and then every `intervalMs`.
 */
export class Reaper {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<Reaped[]> | null = null;

  constructor(private readonly opts: ReaperOptions) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (this.opts.engineUp?.() === false) return;
      void this.sweep().catch((err: Error) => this.opts.log(`reaper: ${err.message}`));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping?.catch(() => undefined);
  }

  /** One pass; concurrent calls share it. */
  sweep(): Promise<Reaped[]> {
    this.sweeping ??= this.pass().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  private async pass(): Promise<Reaped[]> {
    const { backend, installationId } = this.opts;
    const containers = await backend.list({ kiln: 'true', [INSTALLATION_LABEL]: installationId });
    // Services' networks carry their attempt's labels, and are judged the same way (docs/design.md#services).
    const networks = (await backend.services?.listNetworks({ kiln: 'true', [INSTALLATION_LABEL]: installationId })) ?? [];
    if (containers.length === 0 && networks.length === 0) return [];
    const executions = await this.executionsOf([...containers, ...networks]);
    const reaped = await this.reapContainers(containers, executions);
    await this.reapNetworks(networks, executions);
    return reaped;
  }

  private async executionsOf(owned: Array<{ labels: Record<string, string> }>): Promise<Map<string, ExecutionRow>> {
    const ids = [...new Set(owned.map((c) => c.labels['kiln.execution']).filter((id): id is string => isUuid(id)))];
    const { rows } = await this.opts.pool.query<ExecutionRow>(
      `select id, status, attempt, worker_id, lease_expires_at > now() as lease_live from executions where id = any($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** After the containers (a network in use cannot go); removeNetwork disconnects any straggler. */
  private async reapNetworks(networks: Array<{ name: string; labels: Record<string, string> }>, executions: Map<string, ExecutionRow>): Promise<void> {
    const { backend, workerId, runsHere, log } = this.opts;
    const now = Date.now();
    for (const network of networks) {
      const executionId = network.labels['kiln.execution'];
      const reason = orphanReason(network, executionId ? executions.get(executionId) : undefined, { workerId, now, runsHere });
      if (reason === null) continue;
      try {
        await backend.services!.removeNetwork(network.name);
        log(`reaper: removed network ${network.name}: ${reason}`);
      } catch (err) {
        log(`reaper: cannot remove network ${network.name}: ${(err as Error).message}`);
      }
    }
  }

  private async reapContainers(containers: ContainerSummary[], executions: Map<string, ExecutionRow>): Promise<Reaped[]> {
    const { backend, workerId, runsHere, log } = this.opts;
    const now = Date.now();
    const reaped: Reaped[] = [];
    for (const container of containers) {
      const executionId = container.labels['kiln.execution'];
      const reason = orphanReason(container, executionId ? executions.get(executionId) : undefined, { workerId, now, runsHere });
      if (reason === null) continue;
      try {
        await backend.destroy({ id: container.id });
        reaped.push({ id: container.id, executionId, reason });
        log(`reaper: removed container ${container.id.slice(0, 12)} of execution ${executionId ?? '?'}: ${reason}`);
      } catch (err) {
        log(`reaper: cannot remove container ${container.id.slice(0, 12)}: ${(err as Error).message}`);
      }
    }
    return reaped;
  }
}

function isUuid(id: string | undefined): boolean {
  return id !== undefined && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);
}
