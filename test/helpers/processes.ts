import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEST_SECRET, TEST_SECRETS_KEY } from './kiln.js';

const BIN = fileURLToPath(new URL('../../bin/kiln.js', import.meta.url));

export interface KilnProcess {
  child: ChildProcess;
  workerId: string;
  output(): string;
  /** SIGKILL: no shutdown of any kind, as in a crash. */
  kill(): void;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | null>;
}

/** Starts `kiln <role>` (compiled: `npm run build` first) as a separate process on `databaseUrl`. */
export function startKilnProcess(role: 'worker' | 'serve' | 'start', databaseUrl: string, workerId: string, env: Record<string, string> = {}): KilnProcess {
  let out = '';
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-proc-'));
  const child = spawn(process.execPath, [BIN, role], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: databaseUrl,
      KILN_WORKER_ID: workerId,
      KILN_JWT_SECRET: TEST_SECRET,
      KILN_SECRETS_KEY: TEST_SECRETS_KEY,
      KILN_DATA_DIR: dataDir,
      PORT: '0',
      KILN_POLL_INTERVAL_MS: '200',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return {
    child,
    workerId,
    output: () => out,
    kill: () => void child.kill('SIGKILL'),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}
