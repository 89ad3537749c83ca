import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILN_BIN, runKilnCli, startKilnCli } from './helpers/cliProcess.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';

/** Every process's command line (NUL-separated arguments), as `ps` would show them. */
async function commandLines(): Promise<Map<number, string>> {
  const lines = new Map<number, string>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // A process may end between the listing and the read.
    const text = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => null);
    if (text !== null) lines.set(Number(entry), text);
  }
  return lines;
}

let k: TestKiln;
let env: Record<string, string>;
let dir: string;

beforeAll(async () => {
  await requireDocker();
  k = await startTestKiln();
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-cli-secrets-'));
  env = { KILN_URL: k.url, KILN_TOKEN: await k.token('sam'), KILN_CREDENTIALS_FILE: path.join(dir, 'no-login.json') };
});
afterAll(async () => {
  await k?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const secretNames = async (user = 'sam') => ((await k.gql<{ secrets: Array<{ name: string }> }>('{ secrets { name } }', {}, await k.token(user))).data?.secrets ?? []).map((s) => s.name);

describe('kiln secret', () => {
  const value = `s3cr3t-${randomBytes(16).toString('hex')}`;

  it('reads the value from stdin, never from the process list, and a job gets it masked in its log', async () => {
    const running = startKilnCli(['secret', 'set', 'DEPLOY_TOKEN'], env);
    // Watch every process's command line for the value while the CLI runs: before, while and
    // after it reads its standard input.
    let scans = 0;
    let sawCli = false;
    const leaks: string[] = [];
    let exited = false;
    void running.done.finally(() => (exited = true));
    const watching = (async () => {
      while (!exited) {
        for (const [pid, line] of await commandLines()) {
          if (line.includes(value)) leaks.push(`${pid}: ${line.replaceAll('\0', ' ')}`);
          if (pid === running.child.pid && line.includes('secret\0set\0DEPLOY_TOKEN')) sawCli = true;
        }
        scans++;
      }
    })();
    await waitFor(async () => (scans >= 3 ? true : undefined), 10_000, 'three scans of /proc while the CLI waits for its input');
    running.child.stdin.end(`${value}\n`);
    const r = await running.done;
    await watching;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^DEPLOY_TOKEN stored \(new\)$/m);
    expect(sawCli, 'the scan saw the CLI process itself').toBe(true);
    expect(leaks).toEqual([]);
    expect(await secretNames()).toContain('DEPLOY_TOKEN');

    // The job checks the exact value (its hash: one trailing newline was not part of it) and prints it.
    const digest = createHash('sha256').update(value).digest('hex');
    const spec = `jobs:\n  - name: Deploy\n    image: ${TEST_IMAGE}\n    secrets: [DEPLOY_TOKEN]\n    steps:\n      - run: test "$(printf %s "$DEPLOY_TOKEN" | sha256sum | cut -d' ' -f1)" = ${digest} && echo value-matches\n      - run: echo "token=$DEPLOY_TOKEN"\n`;
    await writeFile(path.join(dir, 'deploy.yaml'), spec);
    const run = await runKilnCli(['submit', path.join(dir, 'deploy.yaml'), '--follow'], env, '', 90_000);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^value-matches$/m);
    expect(run.stdout).toMatch(/^token=\*\*\*$/m);
    expect(run.stdout + run.stderr).not.toContain(value);
  });

  it('refuses a value given as an argument, before anything is read or stored', async () => {
    const r = await runKilnCli(['secret', 'set', 'ARG_SECRET', 'visible-in-ps'], env, 'from-stdin\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/read from standard input, never from an argument/);
    expect(await secretNames()).not.toContain('ARG_SECRET');
    const empty = await runKilnCli(['secret', 'set', 'EMPTY_SECRET'], env, '');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/the value is empty: nothing was stored/);
    const badName = await runKilnCli(['secret', 'set', '1-bad'], env, 'x');
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/"1-bad" is not a secret name/);
    expect(await secretNames()).not.toContain('EMPTY_SECRET');
  });

  it('on a terminal, reads the value with echo off', async () => {
    // util-linux `script` runs the CLI on a pseudo-terminal; what it writes there comes back on
    // script's stdout, so an echoed value would show.
    const tty = spawn('script', ['-qfec', `${process.execPath} ${KILN_BIN} secret set TTY_SECRET`, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TERM: 'dumb', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    tty.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
    tty.stderr.setEncoding('utf8').on('data', (d: string) => (screen += d));
    const exited = new Promise<number | null>((resolve) => tty.on('exit', resolve));
    // Typed only once the prompt shows: by then the terminal is in raw mode (no echo).
    await waitFor(async () => (screen.includes('value for TTY_SECRET (not echoed): ') ? true : undefined), 20_000, 'the prompt');
    tty.stdin.write('typed-secret-value\r');
    expect(await exited).toBe(0);
    expect(screen).toMatch(/TTY_SECRET stored/);
    expect(screen).not.toContain('typed-secret-value');
    expect(await secretNames()).toContain('TTY_SECRET');
  });

  it('lists names only (table and --json) and removes one; removing it again is an error', async () => {
    const list = await runKilnCli(['secret', 'list'], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+UPDATED\s+CREATED$/);
    expect(list.stdout).toMatch(/^DEPLOY_TOKEN\s+\d{4}-/m);
    expect(list.stdout).not.toContain(value);
    const json = JSON.parse((await runKilnCli(['secret', 'list', '--json'], env)).stdout) as Array<{ name: string }>;
    expect(json.map((s) => s.name).sort()).toEqual((await secretNames()).sort());
    // Another user sees none of them.
    expect(await secretNames('other')).toEqual([]);

    expect(await runKilnCli(['secret', 'rm', 'TTY_SECRET'], env)).toMatchObject({ code: 0, stdout: 'TTY_SECRET removed\n' });
    expect(await secretNames()).not.toContain('TTY_SECRET');
    const again = await runKilnCli(['secret', 'rm', 'TTY_SECRET'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no secret "TTY_SECRET" \[NOT_FOUND\]/);
  });
});
