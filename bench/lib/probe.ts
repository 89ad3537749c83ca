import { readFileSync, readdirSync } from 'node:fs';
import pg from 'pg';
import { ADMIN_URL, dontCount } from './pg.js';

/**
 * Where a run's time goes: CPU of this Node process, CPU of the Postgres backends serving one
 * database (or of redis-server), and what those backends wait on, sampled from pg_stat_activity.
 * Read from /proc, so it works for local servers only (this machine's Postgres and Redis).
 */

const TICKS_PER_SEC = 100; // USER_HZ on Linux

export function procCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SEC; // utime + stime
  } catch {
    return null;
  }
}

function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

export interface ProbeResult {
  nodeCpuMs: number;
  /** The part of nodeCpuMs spent in the kernel (system calls: sockets, files), all threads. */
  nodeSystemMs: number;
  /** CPU of the database's backends (or of redis-server). */
  serverCpuMs: number;
  /** Share of sampled backend states, most frequent first, e.g. "Lock:transactionid 12%". */
  waits: Array<[string, number]>;
}

export class Probe {
  private cpu0 = process.cpuUsage();
  private server0 = new Map<number, number>();
  private admin: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> = Promise.resolve();
  private readonly counts = new Map<string, number>();
  private total = 0;

  /** `database`: a Postgres database name, or null for redis-server. */
  private constructor(private readonly database: string | null) {}

  static async start(database: string | null, sampleMs = 50): Promise<Probe> {
    const p = new Probe(database);
    if (database !== null) {
      p.admin = new pg.Client({ connectionString: ADMIN_URL, application_name: 'kiln-bench-probe' });
      p.admin.on('error', () => {});
      dontCount(p.admin);
      await p.admin.connect();
      p.timer = setInterval(() => {
        p.sampling = p.sampling.then(() => p.sample()).catch(() => {});
      }, sampleMs);
    }
    for (const pid of await p.serverPids()) p.server0.set(pid, procCpuMs(pid) ?? 0);
    p.cpu0 = process.cpuUsage();
    return p;
  }

  private async serverPids(): Promise<number[]> {
    if (this.database === null) return pidsNamed('redis-server');
    const { rows } = await this.admin!.query<{ pid: number }>(`select pid from pg_stat_activity where datname = $1`, [this.database]);
    return rows.map((r) => r.pid);
  }

  /** One look at what the database's active backends are doing (CPU when no wait event). */
  private async sample(): Promise<void> {
    // A heavyweight-lock wait names the object: `object` on pg_database/0 is the cluster-wide lock
    // that every transaction which sent a NOTIFY takes at commit, held through its WAL flush.
    const { rows } = await this.admin!.query<{ w: string; n: number }>(
      `select coalesce(a.wait_event_type || ':' || a.wait_event, 'on CPU')
                || coalesce(' (' || (select l.classid::regclass::text || '/' || l.objid from pg_locks l
                                      where l.pid = a.pid and not l.granted and l.locktype = 'object' limit 1) || ')', '') as w,
              count(*)::int as n
         from pg_stat_activity a where a.datname = $1 and a.state <> 'idle' and a.pid <> pg_backend_pid() group by 1`,
      [this.database],
    );
    for (const r of rows) {
      this.counts.set(r.w, (this.counts.get(r.w) ?? 0) + r.n);
      this.total += r.n;
    }
  }

  async stop(): Promise<ProbeResult> {
    const cpu = process.cpuUsage(this.cpu0);
    if (this.timer) clearInterval(this.timer);
    await this.sampling;
    let serverCpuMs = 0;
    for (const pid of await this.serverPids()) serverCpuMs += (procCpuMs(pid) ?? 0) - (this.server0.get(pid) ?? 0);
    await this.admin?.end().catch(() => {});
    const waits = [...this.counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / Math.max(1, this.total)] as [string, number]);
    return { nodeCpuMs: (cpu.user + cpu.system) / 1000, nodeSystemMs: cpu.system / 1000, serverCpuMs, waits };
  }
}

/** "ClientRead 40%, on CPU 30%, ..." for the top `n` states. */
export function waitsLine(waits: Array<[string, number]>, n = 5): string {
  return waits.slice(0, n).map(([k, v]) => `${k} ${(v * 100).toFixed(0)}%`).join(', ') || 'no active backend sampled';
}
