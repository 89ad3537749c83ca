import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const KILN_BIN = fileURLToPath(new URL('../../../bin/kiln.js', import.meta.url));
const TICKS_PER_SEC = 100; // USER_HZ on Linux

/** A `kiln serve` or `kiln worker` running as its own process. */
export interface KilnProcess {
  pid: number;
  /** The API's base URL (serve only). */
  url: string | null;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `node bin/kiln.js <role>` with `env` and resolves once it reports being up: the API
 * prints its URL, the worker that it runs.
 */
export async function startKilnProcess(role: 'serve' | 'worker', env: Record<string, string>): Promise<KilnProcess> {
  const child: ChildProcess = spawn(process.execPath, [KILN_BIN, role], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kiln ${role} did not start within 60 s:\n${output}`)), 60_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      const api = /GraphQL at (http:\/\/\S+)\/graphql/.exec(output);
      if (role === 'serve' && api) resolve(api[1]!);
      if (role === 'worker' && /worker .* running/.test(output)) resolve(null);
      if (api || /worker .* running/.test(output)) clearTimeout(timer);
    });
    child.once('exit', (code) => reject(new Error(`kiln ${role} exited with ${code}:\n${output}`)));
  });
  return {
    pid: child.pid!,
    url,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** CPU time (user + system) a process has used so far, in ms; from /proc. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SEC;
}

/** Resident memory of a process now, in MiB; from /proc. */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}
