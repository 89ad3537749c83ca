import Dockerode from 'dockerode';
import { setTimeout as delay } from 'node:timers/promises';

/** One Kiln container's life as the engine reported it (epoch ms; null = not seen). */
export interface ContainerLife {
  id: string;
  executionId: string;
  jobId: string;
  attempt: number;
  worker: string;
  installation: string;
  startedAt: number | null;
  /** Its processes died (`die`), or, when that event was missed, the engine came back without it. */
  diedAt: number | null;
  destroyedAt: number | null;
}

/**
 * Follows the engine's event stream for Kiln containers (label `kiln=true`) and keeps each
 * container's start, death and removal. Survives an engine restart: the stream is reopened, and
 * containers whose events were missed meanwhile are closed at the time the engine answered again
 * if they are gone or stopped by then (an upper bound of when they died).
 */
export class DockerEventRecorder {
  readonly containers = new Map<string, ContainerLife>();
  private stopped = false;
  private stream: NodeJS.ReadableStream | null = null;
  private loop: Promise<void> = Promise.resolve();
  private readonly docker = new Dockerode();

  start(): Promise<void> {
    let first!: () => void;
    const opened = new Promise<void>((r) => (first = r));
    this.loop = this.follow(first);
    return opened;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    (this.stream as unknown as { destroy?: () => void } | null)?.destroy?.();
    await this.loop;
  }

  /** Containers of one installation. */
  of(installation: string): ContainerLife[] {
    return [...this.containers.values()].filter((c) => c.installation === installation);
  }

  private async follow(opened: () => void): Promise<void> {
    let since = Math.floor(Date.now() / 1000) - 1;
    let wasCut = false;
    while (!this.stopped) {
      try {
        const stream = (await this.docker.getEvents({
          since,
          filters: { type: ['container'], label: ['kiln=true'], event: ['start', 'die', 'destroy'] },
        } as Dockerode.GetEventsOptions)) as NodeJS.ReadableStream;
        this.stream = stream;
        opened();
        if (wasCut) await this.closeMissed(Date.now());
        wasCut = false;
        let buffer = '';
        for await (const chunk of stream) {
          buffer += chunk.toString();
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (line) this.record(JSON.parse(line));
          }
        }
      } catch {
        /* the engine went away; reopen below */
      }
      if (this.stopped) return;
      wasCut = true;
      since = Math.floor(Date.now() / 1000) - 1;
      await delay(250);
    }
  }

  private record(e: { Action: string; timeNano: number; Actor: { ID: string; Attributes: Record<string, string> } }): void {
    const a = e.Actor.Attributes;
    const at = Math.round(e.timeNano / 1e6);
    let c = this.containers.get(e.Actor.ID);
    if (!c) {
      c = {
        id: e.Actor.ID,
        executionId: a['kiln.execution'] ?? '',
        jobId: a['kiln.job'] ?? '',
        attempt: Number(a['kiln.attempt'] ?? 0),
        worker: a['kiln.worker'] ?? '',
        installation: a['kiln.installation'] ?? '',
        startedAt: null,
        diedAt: null,
        destroyedAt: null,
      };
      this.containers.set(c.id, c);
    }
    if (e.Action === 'start') c.startedAt ??= at;
    else if (e.Action === 'die') c.diedAt ??= at;
    else if (e.Action === 'destroy') {
      c.destroyedAt ??= at;
      c.diedAt ??= at;
    }
  }

  /** After a cut stream: containers not running any more are closed at `at` (an upper bound). */
  private async closeMissed(at: number): Promise<void> {
    const running = new Set((await this.docker.listContainers({ filters: { label: ['kiln=true'] } })).map((c) => c.Id));
    for (const c of this.containers.values()) {
      if (c.startedAt !== null && c.diedAt === null && !running.has(c.id)) c.diedAt = at;
    }
  }
}
