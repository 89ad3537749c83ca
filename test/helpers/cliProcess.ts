import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The real `kiln` binary (dist/, so `npm run build` first). */
export const KILN_BIN = fileURLToPath(new URL('../../bin/kiln.js', import.meta.url));

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `kiln` client command with pipes (not a terminal), and its exit as a promise. */
export interface RunningKiln {
  child: ChildProcessWithoutNullStreams;
  done: Promise<Ran>;
}

/**
 * Starts `kiln <args>` with only PATH, HOME and `env` in its environment and stdin as a pipe the
 * caller writes to (or ends). A command still running after `timeoutMs` is killed and rejected.
 */
export function startKilnCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): RunningKiln {
  const child = spawn(process.execPath, [KILN_BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Ran>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kiln ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, done };
}

/** Runs `kiln <args>` to its end, with `input` (if any) on its standard input. */
export function runKilnCli(args: string[], env: Record<string, string>, input = '', timeoutMs = 60_000): Promise<Ran> {
  const running = startKilnCli(args, env, timeoutMs);
  running.child.stdin.end(input);
  return running.done;
}
