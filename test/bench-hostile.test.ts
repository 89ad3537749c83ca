import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { post, Tally } from '../bench/hostile/api.js';
import { cronHeavyFile } from '../bench/hostile/cron.js';
import { treeRssMb } from '../bench/lib/rss.js';
import { compileJobFile } from '../src/jobfile/compile.js';

/** The pieces of `npm run bench -- hostile` whose mistakes would print wrong figures. */

describe('hostile bench: server RSS includes its children', () => {
  it('counts a child holding 200 MB in the tree of its parent', async () => {
    const before = treeRssMb(process.pid);
    const child = spawn(process.execPath, ['-e', 'const b = Buffer.alloc(200e6, 1); console.log("ready"); setInterval(() => b[0]++, 1000)'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      const withChild = treeRssMb(process.pid);
      expect(withChild - before).toBeGreaterThan(180);
      expect(treeRssMb(child.pid!)).toBeGreaterThan(180);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('counts 0 for a process that is gone', () => {
    expect(treeRssMb(2 ** 22 + 12345)).toBe(0);
  });
});

describe('hostile bench: the attacker tally over a real HTTP server', () => {
  let server: Server | null = null;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('tells answered, refused (by status and by GraphQL code), failed and cut-off requests apart', async () => {
    const url = await listen((req, res) => {
      if (req.url === '/ok') return void res.end(JSON.stringify({ data: { me: { id: 'x' } } }));
      if (req.url === '/busy') return void res.writeHead(429).end('rate limit exceeded');
      if (req.url === '/bad') return void res.end(JSON.stringify({ errors: [{ message: 'too costly', extensions: { code: 'BAD_USER_INPUT' } }] }));
      if (req.url === '/reset') return void req.socket.destroy();
      // /slow: never answers
    });
    const tally = new Tally();
    const slow = new AbortController();
    setTimeout(() => slow.abort(), 200);
    await Promise.all([
      tally.time(post(`${url}/ok`, {})),
      tally.time(post(`${url}/busy`, {})),
      tally.time(post(`${url}/busy`, {})),
      tally.time(post(`${url}/bad`, {})),
      tally.time(post(`${url}/reset`, {})),
      tally.time(post(`${url}/slow`, { signal: slow.signal })),
    ]);
    expect(tally.answered).toBe(1);
    expect(Object.fromEntries(tally.refusals)).toEqual({ 'HTTP 429: rate limit exceeded': 2, 'BAD_USER_INPUT: too costly': 1 });
    expect(tally.failed).toBe(1);
    expect(tally.cutOff).toBe(1);
    expect(tally.sent).toBe(6);
    server!.closeAllConnections();
  });

  it('counts a large body without keeping it', async () => {
    const body = `{"data":{"x":"${'y'.repeat(3 << 20)}"}}`;
    const url = await listen((_req, res) => res.end(body));
    const a = await post(url, {});
    expect(a.bytes).toBe(body.length);
    expect(a.body).toBeNull();
    expect(a.head.startsWith('{"data":{"x":"yyy')).toBe(true);
  });
});

describe('hostile bench: the cron-heavy job file', () => {
  it('is a valid file whose job i fires at second i % 60, minute i / 60, on a fifth Thursday of February', () => {
    const result = compileJobFile(cronHeavyFile(62));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.jobs).toHaveLength(62);
    expect(result.jobs[61]!.schedule).toBe('1 1 0 * 2 4#5');
  });
});
