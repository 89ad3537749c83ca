import { execFile, spawn } from 'node:child_process';
import { openSync, readFileSync, readlinkSync, readdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A running dockerd as /proc shows it. */
export interface DockerdProcess {
  pid: number;
  /** argv, the executable first. */
  argv: string[];
  /** Where its stdout/stderr go (a file), or null when not a regular file. */
  logFile: string | null;
}

/** Finds dockerd: the pid in /var/run/docker.pid when alive, else the first `dockerd` in /proc. */
export function findDockerd(): DockerdProcess {
  const candidates: number[] = [];
  try {
    candidates.push(Number(readFileSync('/var/run/docker.pid', 'utf8').trim()));
  } catch {
    /* no pid file */
  }
  for (const d of readdirSync('/proc')) if (/^\d+$/.test(d)) candidates.push(Number(d));
  for (const pid of candidates) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.length > 0);
    } catch {
      continue;
    }
    if (argv.length === 0 || !/(^|\/)dockerd$/.test(argv[0]!)) continue;
    let logFile: string | null = null;
    try {
      const target = readlinkSync(`/proc/${pid}/fd/2`);
      if (target.startsWith('/') && !target.startsWith('/dev/')) logFile = target.replace(/ \(deleted\)$/, '');
    } catch {
      /* unreadable */
    }
    return { pid, argv, logFile };
  }
  throw new Error('no dockerd process found in /proc');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `docker info` answers, or throws after `timeoutMs`. */
export async function waitForDocker(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 5000 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`docker info did not answer within ${timeoutMs} ms: ${(err as Error).message}`);
      await delay(250);
    }
  }
}

/** Timestamps of one restart of the engine (epoch ms). */
export interface DockerdRestart {
  oldPid: number;
  newPid: number;
  termAt: number;
  exitedAt: number;
  startedAt: number;
  answeringAt: number;
}

/** A stopped engine: what it was, to start it again the same way. */
export interface StoppedDockerd {
  before: DockerdProcess;
  termAt: number;
  exitedAt: number;
}

/** Stops the machine's Docker engine as an operator would: SIGTERM, then waits for its exit. */
export async function stopDockerd(opts: { stopTimeoutMs?: number } = {}): Promise<StoppedDockerd> {
  const before = findDockerd();
  const termAt = Date.now();
  process.kill(before.pid, 'SIGTERM');
  const stopDeadline = Date.now() + (opts.stopTimeoutMs ?? 60_000);
  while (alive(before.pid)) {
    if (Date.now() > stopDeadline) throw new Error(`dockerd ${before.pid} did not exit within ${opts.stopTimeoutMs ?? 60_000} ms of SIGTERM`);
    await delay(100);
  }
  return { before, termAt, exitedAt: Date.now() };
}

/**
 * Starts a stopped engine again with the same command line, detached (its own session, stdin from
 * /dev/null), appending to the same log file, and waits for `docker info`.
 */
export async function startDockerd(stopped: StoppedDockerd): Promise<{ newPid: number; startedAt: number; answeringAt: number }> {
  const { before } = stopped;
  const out = before.logFile ? openSync(before.logFile, 'a') : 'ignore';
  const child = spawn(before.argv[0]!, before.argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
  child.unref();
  const startedAt = Date.now();
  await waitForDocker(60_000);
  return { newPid: child.pid!, startedAt, answeringAt: Date.now() };
}

/**
 * Restarts the machine's Docker engine as an operator would (stopDockerd, then startDockerd).
 * `downMs` keeps it down a while longer.
 */
export async function restartDockerd(opts: { downMs?: number; stopTimeoutMs?: number } = {}): Promise<DockerdRestart> {
  const stopped = await stopDockerd(opts);
  if (opts.downMs) await delay(opts.downMs);
  const started = await startDockerd(stopped);
  return { oldPid: stopped.before.pid, termAt: stopped.termAt, exitedAt: stopped.exitedAt, ...started };
}
