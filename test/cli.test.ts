import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Output } from '../src/cli/output.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { runKilnCli, type Ran } from './helpers/cliProcess.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: looks for ANSI codes on purpose
const ANSI = /\x1b\[/;

/** Runs the real `kiln` binary (dist/, so `npm run build` first) with pipes: not a terminal, no login. */
function kiln(args: string[], env: Record<string, string> = {}, timeoutMs = 90_000): Promise<Ran> {
  return runKilnCli(args, { KILN_CREDENTIALS_FILE: path.join(dir, 'no-login.json'), ...env }, '', timeoutMs);
}

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('kiln validate', () => {
  it('prints file:line:col: message for each problem and exits non-zero', async () => {
    await writeFile(file('bad.yaml'), 'jobs:\n  - name: Build\n    schedul: "0 0 * * *"\n    steps:\n      - run: make\n        timeout: 10 minutes\n');
    const r = await kiln(['validate', file('bad.yaml')]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${file('bad.yaml')}:3:5: unknown key "schedul"; did you mean "schedule"\\?`));
    expect(lines[1]).toMatch(new RegExp(`^${file('bad.yaml')}:6:18: .*duration`));
    expect(r.stderr).toMatch(/2 errors/);
  });

  it('exits 0 on a valid file, without a server or a token', async () => {
    await writeFile(file('good.yaml'), 'jobs:\n  - name: Build\n    schedule: "0 0 * * *"\n    steps: [{run: make}]\n');
    const r = await kiln(['validate', file('good.yaml')], { KILN_URL: 'http://127.0.0.1:9' });
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(r.stderr).toMatch(/valid, 1 job/);
  });

  it('explains a missing file with usage exit code 2', async () => {
    const r = await kiln(['validate', file('missing.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read .*missing\.yaml: ENOENT/);
  });
});

describe('kiln against a server', () => {
  let k: TestKiln;
  let env: Record<string, string>;

  beforeAll(async () => {
    await requireDocker();
    k = await startTestKiln();
    env = { KILN_URL: k.url, KILN_TOKEN: await k.token('carol') };
  });
  afterAll(() => k?.stop());

  it('refuses to run without a token (exit 2) and reports a refused token (exit 1)', async () => {
    const none = await kiln(['jobs'], { KILN_URL: k.url });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no token: pass --token <jwt> or set KILN_TOKEN, or sign in with `kiln login`/);
    const bad = await kiln(['jobs', '--token', 'nope', '--server', k.url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/UNAUTHENTICATED/);
  });

  it('submit --follow prints the log of a one-off job and exits 0 when it succeeds', async () => {
    await writeFile(file('ok.yaml'), `jobs:\n  - name: Hello\n    image: ${TEST_IMAGE}\n    steps:\n      - run: for i in 1 2 3; do echo "hello $i"; done\n      - run: echo to-stderr >&2\n`);
    const r = await kiln(['submit', file('ok.yaml'), '--follow'], env);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.filter((l) => !l.startsWith('[kiln]') && l !== '')).toEqual(['hello 1', 'hello 2', 'hello 3', 'to-stderr']);
    expect(lines).toContain('[kiln] execution succeeded');
    expect(r.stderr).toMatch(/submitted Hello/);
    expect(r.stderr).toMatch(/Hello #1 SUCCEEDED in/);
    // Not a terminal: no colour codes, no spinner.
    expect(ANSI.test(r.stdout + r.stderr)).toBe(false);
  });

  it('submit --follow exits non-zero with the log when the job fails', async () => {
    await writeFile(file('fail.yaml'), `jobs:\n  - name: Broken\n    image: ${TEST_IMAGE}\n    steps:\n      - run: echo about to fail; exit 3\n      - run: echo never\n`);
    const r = await kiln(['submit', file('fail.yaml'), '--follow'], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^about to fail$/m);
    expect(r.stdout).not.toMatch(/^never$/m);
    expect(r.stderr).toMatch(/Broken #1 FAILED in .*exited with code 3/);
  });

  it('lists jobs and history, prints logs, triggers and cancels', async () => {
    const jobs = await kiln(['jobs'], env);
    expect(jobs.code).toBe(0);
    expect(jobs.stdout).toMatch(/^NAME\s+SCHEDULE\s+NEXT RUN\s+LAST\s+ID$/m);
    expect(jobs.stdout).toMatch(/^Broken\s+\(one-off\)\s+-\s+#1 FAILED\s+[0-9a-f-]{36}$/m);
    expect(jobs.stdout).toMatch(/^Hello\s+\(one-off\)\s+-\s+#1 SUCCEEDED/m);

    const history = await kiln(['history', 'Hello'], env);
    expect(history.code).toBe(0);
    const id = /^1\s+SUCCEEDED\s+SUBMIT\s+\S+\s+\S+\s+([0-9a-f-]{36})$/m.exec(history.stdout)?.[1];
    expect(id, history.stdout).toBeDefined();

    const logs = await kiln(['logs', id!], env);
    expect(logs.code).toBe(0);
    expect(logs.stdout.split('\n').filter((l) => l.startsWith('hello'))).toEqual(['hello 1', 'hello 2', 'hello 3']);
    const tail = await kiln(['logs', id!, '--follow', '--after', '3'], env);
    expect(tail.code).toBe(0);
    expect(tail.stdout).not.toMatch(/execution #1 \(attempt/);
    expect(tail.stdout).toMatch(/\[kiln\] execution succeeded/);

    await writeFile(file('slow.yaml'), `jobs:\n  - name: Slow\n    schedule: "0 0 1 1 *"\n    image: ${TEST_IMAGE}\n    steps: [{run: "echo started; sleep 60"}]\n`);
    expect((await kiln(['submit', file('slow.yaml')], env)).code).toBe(0);
    const triggered = await kiln(['trigger', 'Slow'], env);
    expect(triggered.code).toBe(0);
    const slowId = triggered.stdout.trim();
    expect(slowId).toMatch(/^[0-9a-f-]{36}$/);
    const token = env.KILN_TOKEN!;
    await waitFor(async () => {
      const r = await k.gql(`query($id: ID!) { execution(id: $id) { status } }`, { id: slowId }, token);
      return r.data!.execution.status === 'RUNNING' ? true : undefined;
    }, 30_000, 'the slow execution to run');
    const cancelled = await kiln(['cancel', slowId], env);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(/#1 .* (RUNNING \(cancel requested|CANCELLED)/);
    const followed = await kiln(['logs', slowId, '--follow'], env);
    expect(followed.code).toBe(1);
    expect(followed.stderr).toMatch(/CANCELLED/);
  });

  it('answers NOT_FOUND for an unknown job name', async () => {
    const r = await kiln(['history', 'NoSuchJob'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no job "NoSuchJob" \[NOT_FOUND\]/);
  });
});

describe('terminal output', () => {
  it('colours statuses and spins on a terminal, and stays plain in a pipe', () => {
    const written = { out: '', err: '' };
    const tty = new Output({ isTTY: true, write: (s: string) => (written.out += s) }, { isTTY: true, write: (s: string) => (written.err += s) }, {});
    expect(tty.status('FAILED')).toBe('\x1b[31mFAILED\x1b[39m');
    tty.spin('Build #1 running');
    tty.line('a log line');
    tty.stopSpinner();
    expect(written.err).toMatch(/⠋.*Build #1 running/);
    expect(written.err).toContain('\r\x1b[2K');
    expect(written.out).toBe('a log line\n');

    const piped = { out: '', err: '' };
    const plain = new Output({ write: (s: string) => (piped.out += s) }, { write: (s: string) => (piped.err += s) }, {});
    expect(plain.status('FAILED')).toBe('FAILED');
    plain.spin('Build #1 running');
    plain.line('a log line');
    expect(piped).toEqual({ out: 'a log line\n', err: '' });
    expect(new Output({ isTTY: true, write: () => {} }, { write: () => {} }, { NO_COLOR: '1' }).status('FAILED')).toBe('FAILED');
  });
});
