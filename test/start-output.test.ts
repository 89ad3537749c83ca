import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { KILN_BIN } from './helpers/cliProcess.js';
import { createTestDatabase } from './helpers/db.js';
import { TEST_SECRET, TEST_SECRETS_KEY, waitFor } from './helpers/kiln.js';

let db: { url: string; drop(): Promise<void> };
let dataDir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'kiln-start-output-'));
});
afterAll(async () => {
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/**
 * Runs `kiln serve` until it says it is ready, then stops it with SIGTERM. With `terminal`, it
 * runs under util-linux `script`, on a pseudo-terminal, as `npm start` in a terminal does.
 */
async function serveOutput(terminal: boolean, extraEnv: Record<string, string> = {}): Promise<string> {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    TERM: 'xterm',
    DATABASE_URL: db.url,
    KILN_DATA_DIR: dataDir,
    KILN_JWT_SECRET: TEST_SECRET,
    KILN_SECRETS_KEY: TEST_SECRETS_KEY,
    PORT: '0',
    ...extraEnv,
  };
  const command = `${process.execPath} ${KILN_BIN} serve`;
  const child = terminal ? spawn('script', ['-qfec', `exec ${command}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] }) : spawn(process.execPath, [KILN_BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await waitFor(async () => (/Kiln is ready/.test(out) && /Sign in|signIn/.test(out) ? true : undefined), 45_000, `kiln serve to say it is ready:\n${out}`);
  } finally {
    // `exec` made the shell under script the Kiln itself: SIGTERM reaches it through script.
    child.kill('SIGTERM');
    await exited;
  }
  return out;
}

describe('what kiln serve prints', () => {
  it('in a pipe: JSON lines only, one of them saying where the app is and how to sign in', async () => {
    const out = await serveOutput(false);
    // The migrator of a fresh database writes a few lines of its own; every line of Kiln's log is JSON.
    const lines = out.split('\n').filter((l) => l !== '' && !l.includes('[migrator]'));
    const parsed = lines.map((l) => JSON.parse(l) as { level: string; msg: string; url?: string; signIn?: string });
    const ready = parsed.find((l) => l.msg.startsWith('Kiln is ready at '));
    expect(ready, out).toBeDefined();
    expect(ready!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ready!.msg).toBe(`Kiln is ready at ${ready!.url}/`);
    expect(ready!.signIn).toMatch(/kiln token <user>/);
  });

  it('on a terminal: readable lines, and a block with the URL and how to sign in', async () => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the terminal's colour codes on purpose
    const out = (await serveOutput(true)).replace(/\x1b\[[0-9;]*m/g, '').replaceAll('\r', '');
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[serve\] starting kiln serve$/m);
    expect(out).not.toMatch(/^\{"level"/m);
    const url = /^ {2}Kiln is ready {2}(http:\/\/127\.0\.0\.1:\d+)\/$/m.exec(out)?.[1];
    expect(url, out).toBeDefined();
    expect(out).toContain(`  GraphQL   ${url}/graphql   REST  ${url}/api/v1`);
    expect(out).toMatch(/^ {2}Sign in {3}local mode: `kiln token <user>`/m);
  });

  it('on a terminal with KILN_LOG_FORMAT=json: JSON all the same', async () => {
    const out = (await serveOutput(true, { KILN_LOG_FORMAT: 'json' })).replaceAll('\r', '');
    expect(out).toMatch(/^\{"level":"info".*"msg":"Kiln is ready at http:\/\/127\.0\.0\.1:\d+\/"/m);
    expect(out).not.toMatch(/^ {2}Kiln is ready/m);
  });

  it('KILN_LOG_FORMAT takes auto, json or pretty', () => {
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ KILN_LOG_FORMAT: 'JSON' }).logFormat).toBe('json');
    expect(loadConfig({ KILN_LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(() => loadConfig({ KILN_LOG_FORMAT: 'yaml' })).toThrow(ConfigError);
  });
});
