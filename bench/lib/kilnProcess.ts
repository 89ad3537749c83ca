import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const KILN_BIN = fileURLToPath(new URL('../../../bin/kiln.js', import.meta.url));

/** A `kiln serve`, `kiln worker` or `kiln start` process started by a benchmark. */
export interface KilnProcess {
  child: ChildProcess;
  /** The API's base URL (`serve`, `start`), null for a worker. */
  url: string | null;
  /** What it has written on stderr so far (its log). */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs` (20 s by default); resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `kiln <role>` (`start` = API and worker in one process) as its own process with exactly `env` (plus PATH and HOME), so the
 * benchmark's client and anchor never share an event loop with the server they measure. Up once
 * it says so on stderr; its output is echoed on stderr when BENCH_VERBOSE is set. BENCH_KILN_NODE_OPTIONS
 * becomes its NODE_OPTIONS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where its time goes).
 */
export async function startKilnProcess(role: 'serve' | 'worker' | 'start', env: Record<string, string>): Promise<KilnProcess> {
  const nodeOptions = process.env.BENCH_KILN_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_KILN_NODE_OPTIONS } : {};
  const child = spawn(process.execPath, [KILN_BIN, role], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...nodeOptions, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kiln ${role} did not start within 60 s:\n${output}`)), 60_000);
    createInterface({ input: child.stderr! }).on('line', (line) => {
      output += line + '\n';
      if (process.env.BENCH_VERBOSE) console.error(`[${role}] ${line}`);
      const api = /GraphQL at (http:\/\/\S+)\/graphql/.exec(line);
      if (api) resolve(api[1]!);
      if (role === 'worker' && /worker .* running/.test(line)) resolve(null);
      if (api || (role === 'worker' && /worker .* running/.test(line))) clearTimeout(timer);
    });
    child.once('exit', (code) => reject(new Error(`kiln ${role} exited with ${code}:\n${output}`)));
  });
  return {
    child,
    url,
    output: () => output,
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(killer);
    },
  };
}
