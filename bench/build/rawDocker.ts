import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { copyGoModule, GO_CACHE, GO_JOB_ENV, GO_SEED_STEPS } from '../lib/goModule.js';

/**
 * The anchor of `npm run bench -- build`: the same steps in the same image with `docker` alone,
 * shaped as Kiln runs them (one container, each step a `docker exec` of `sh -c` in /workspace,
 * the same env and limits), with none of Kiln's work around them (no queue, no checkout: the
 * module is bind-mounted, no log storage).
 */
export interface RunTimes {
  /** Per step, in GO_SEED_STEPS' order. */
  steps: number[];
  /** From the first command to the container's removal (Kiln: submit -> final status). */
  total: number;
}

/** Runs `docker args`; resolves with its stdout, rejects with its stderr on a non-zero exit. */
function docker(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`docker ${args.slice(0, 2).join(' ')} exited ${code}: ${(err || out).slice(-2000)}`))));
  });
}

/** Named volumes standing for GO_CACHE's paths, kept between runs (the raw form of a warm cache). */
export interface RawCache {
  mounts: string[];
  remove(): Promise<void>;
}

export async function rawCache(): Promise<RawCache> {
  const id = randomBytes(4).toString('hex');
  const volumes = GO_CACHE.paths.map((p, i) => ({ name: `kiln-bench-go-cache-${id}-${i}`, path: p }));
  for (const v of volumes) await docker(['volume', 'create', '--label', 'kiln.bench=build', v.name]);
  return {
    mounts: volumes.flatMap((v) => ['-v', `${v.name}:${v.path}`]),
    async remove() {
      await docker(['volume', 'rm', '-f', ...volumes.map((v) => v.name)]).catch(() => undefined);
    },
  };
}

export interface RawOptions {
  image: string;
  cpus: number;
  memoryBytes: number;
  cache?: RawCache;
}

/** One run of the steps in a fresh container on a fresh copy of the module; throws if a step fails. */
export async function rawRun(opts: RawOptions): Promise<RunTimes> {
  const work = await mkdtemp(path.join(tmpdir(), 'kiln-bench-go-'));
  const name = `kiln-bench-go-${randomBytes(4).toString('hex')}`;
  try {
    // Outside the timing: Kiln's counterpart, the checkout, is inside its total.
    await copyGoModule(work);
    const env = Object.entries(GO_JOB_ENV).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const started = performance.now();
    await docker([
      'run', '-d', '--name', name, '--label', 'kiln.bench=build', '--network', 'none',
      '--cpus', String(opts.cpus), '--memory', String(opts.memoryBytes),
      '-v', `${work}:/workspace`, ...(opts.cache?.mounts ?? []), '-w', '/workspace', ...env,
      '--entrypoint', 'sleep', opts.image, 'infinity',
    ]);
    const steps: number[] = [];
    for (const step of GO_SEED_STEPS) {
      const t0 = performance.now();
      await docker(['exec', '-w', '/workspace', name, 'sh', '-c', step.run]);
      steps.push(performance.now() - t0);
    }
    await docker(['rm', '-f', name]);
    return { steps, total: performance.now() - started };
  } finally {
    await docker(['rm', '-f', name]).catch(() => undefined);
    // The container ran as root: its files in the bind mount are root's, as this process is on CI.
    await rm(work, { recursive: true, force: true });
  }
}
