import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mintLocalToken } from '../../src/auth/token.js';
import { localAuth } from '../../src/config.js';

const KILN_BIN = fileURLToPath(new URL('../../../bin/kiln.js', import.meta.url));

export const CHAOS_SECRET = 'kiln-chaos-secret-that-is-at-least-32-bytes-long';
export const CHAOS_SECRETS_KEY = Buffer.alloc(32, 9).toString('base64');
/** Built by scripts/build-test-images.sh; there is no registry. */
export const CHAOS_IMAGE = 'kiln-test/busybox:latest';

/** A `kiln serve` or `kiln worker` child process. */
export interface KilnProcess {
  role: 'serve' | 'worker';
  name: string;
  pid: number;
  /** API base URL (serve only). */
  url: string | null;
  /** Everything it printed (its log, with ISO timestamps). */
  output(): string;
  exited(): boolean;
  /** SIGKILL, as in a crash. */
  kill(): void;
  /** SIGTERM, then SIGKILL after 15 s. */
  stop(): Promise<void>;
}

/** Where a scenario's processes log, and the environment they share. */
export interface KilnEnv {
  logDir: string;
  env: Record<string, string>;
}

/** Starts `node bin/kiln.js <role>` and resolves once it is up (API URL printed / worker running). */
export async function startKiln(role: 'serve' | 'worker', name: string, base: KilnEnv, extra: Record<string, string> = {}): Promise<KilnProcess> {
  mkdirSync(base.logDir, { recursive: true });
  const file = createWriteStream(path.join(base.logDir, `${name}.log`), { flags: 'a' });
  const child: ChildProcess = spawn(process.execPath, [KILN_BIN, role], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
      KILN_WORKER_ID: name,
      PORT: '0',
      HOST: '127.0.0.1',
      ...base.env,
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const onData = (d: Buffer) => {
    output += d.toString();
    file.write(d);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => file.end());
  const url = await new Promise<string | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kiln ${role} ${name} did not start within 90 s:\n${output.slice(-4000)}`)), 90_000);
    const check = () => {
      const api = /GraphQL at (http:\/\/\S+)\/graphql/.exec(output);
      if (role === 'serve' && api) done(api[1]!);
      if (role === 'worker' && /worker .* running/.test(output)) done(null);
    };
    const done = (v: string | null) => {
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.stderr!.off('data', check);
      child.off('exit', onExit);
      resolve(v);
    };
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`kiln ${role} ${name} exited with ${code} during start-up:\n${output.slice(-4000)}`));
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', onExit);
  });
  const isExited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    role,
    name,
    pid: child.pid!,
    url,
    output: () => output,
    exited: isExited,
    kill: () => void child.kill('SIGKILL'),
    async stop() {
      if (isExited()) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** A minimal client of one API process: GraphQL and the REST submit route. */
export class ApiClient {
  private constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  static async forUser(url: string, user: string): Promise<ApiClient> {
    const auth = localAuth(new TextEncoder().encode(CHAOS_SECRET));
    const token = await mintLocalToken(auth as Extract<typeof auth, { mode: 'local' }>, user, 24 * 3600);
    return new ApiClient(url, token);
  }

  /** Requests refused by the API's rate limit (429), each waited out and sent again. */
  throttled = 0;

  async gql<T = any>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let res: Response;
    for (;;) {
      res = await fetch(`${this.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(30_000),
      });
      // A 429 never did anything: wait as told (a well-behaved client) and send it again.
      if (res.status !== 429) break;
      this.throttled++;
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, Math.max(100, Number(res.headers.get('retry-after') ?? '0.5') * 1000)));
    }
    const body = (await res.json()) as { data?: T; errors?: unknown[] };
    if (!res.ok || body.errors) throw new Error(`GraphQL ${res.status}: ${JSON.stringify(body.errors ?? body).slice(0, 500)}`);
    return body.data as T;
  }

  /** Submits a job file over GraphQL; the ids of its jobs. */
  async submit(yaml: string): Promise<string[]> {
    const d = await this.gql<{ submitJob: { jobs: Array<{ id: string }> } }>(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: yaml });
    return d.submitJob.jobs.map((j) => j.id);
  }

  /** `POST /api/v1/submit_job`: the HTTP status, and the job ids when acknowledged (2xx). */
  async submitRest(yaml: string, timeoutMs = 15_000): Promise<{ status: number; jobIds: string[] }> {
    const res = await fetch(`${this.url}/api/v1/submit_job`, {
      method: 'POST',
      headers: { 'content-type': 'application/yaml', authorization: `Bearer ${this.token}` },
      body: yaml,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status < 200 || res.status >= 300) return { status: res.status, jobIds: [] };
    return { status: res.status, jobIds: (JSON.parse(text) as { job_ids: string[] }).job_ids };
  }
}

/**
 * A step that prints `lines` numbered lines (`<tag> <i>/<lines>`), `perSleep` of them between
 * sleeps of `sleepSec`, so that a checker can prove no line was lost.
 */
export function numberedStep(tag: string, lines: number, perSleep = 0, sleepSec = 0.1): string {
  const pause = perSleep > 0 ? ` if [ $((i % ${perSleep})) -eq 0 ]; then sleep ${sleepSec}; fi;` : '';
  return `i=1; while [ $i -le ${lines} ]; do echo "${tag} $i/${lines}";${pause} i=$((i+1)); done`;
}

/** YAML of one job; `steps` are shell commands. */
export function jobYaml(job: { name: string; steps: string[]; schedule?: string; retries?: number; timeout?: string; concurrency?: string; misfire?: string }): string {
  const lines = [`  - name: ${job.name}`, `    image: ${CHAOS_IMAGE}`];
  if (job.schedule) lines.push(`    schedule: "${job.schedule}"`);
  if (job.retries !== undefined) lines.push(`    retries: ${job.retries}`);
  if (job.timeout) lines.push(`    timeout: ${job.timeout}`);
  if (job.concurrency) lines.push(`    concurrency: ${job.concurrency}`);
  if (job.misfire) lines.push(`    misfire: ${job.misfire}`);
  lines.push('    steps:');
  for (const s of job.steps) lines.push(`      - run: ${JSON.stringify(s)}`);
  return lines.join('\n') + '\n';
}

export function jobsFile(jobs: Parameters<typeof jobYaml>[0][]): string {
  return 'jobs:\n' + jobs.map(jobYaml).join('');
}
