import { readFileSync, readdirSync } from 'node:fs';

/**
 * Resident memory of a process together with its descendants (a `kiln start` runs git and
 * other helpers as children), read from /proc; a process that is gone counts 0.
 */

function vmRssKb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

/** RSS of `pid` and every process below it, in MiB. */
export function treeRssMb(pid: number): number {
  let kb = 0;
  const todo = [pid];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    kb += vmRssKb(p);
    todo.push(...childrenOf(p));
  }
  return kb / 1024;
}

/** The highest tree RSS seen while sampling every `everyMs`. */
export class PeakRss {
  private peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, everyMs = 100) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    this.peak = Math.max(this.peak, treeRssMb(this.pid));
  }

  /** The peak so far, in MiB (sampling goes on). */
  get mb(): number {
    return this.peak;
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}
