import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TEST_IMAGE } from './docker.js';

const KILN_BIN = fileURLToPath(new URL('../../bin/kiln.js', import.meta.url));

/** A `kiln worker` running as its own process (from dist/: `npm run build` first). */
export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it printed on stderr so far (its log). */
  output(): string;
  /** SIGTERM, then SIGKILL after 10 s; resolves when it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts `node bin/kiln.js worker` against `databaseUrl` and resolves once it reports that it
 * runs. Rejects (with its output) if it exits or stays silent for 30 s.
 */
export async function startWorkerProcess(databaseUrl: string, dataDir: string, env: Record<string, string> = {}): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [KILN_BIN, 'worker'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      DATABASE_URL: databaseUrl,
      KILN_DATA_DIR: dataDir,
      KILN_DEFAULT_IMAGE: TEST_IMAGE,
      KILN_WORKER_CONCURRENCY: '2',
      KILN_POLL_INTERVAL_MS: '200',
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kiln worker did not report running within 30 s:\n${output}`)), 30_000);
    const onData = () => {
      if (/worker .* running/.test(output)) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        resolve();
      }
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kiln worker exited with ${code} during start-up:\n${output}`));
    });
  });
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}
