import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mintLocalToken } from '../src/auth/token.js';
import { loadConfig, localAuth } from '../src/config.js';
import { TrustedProxies } from '../src/http/clientAddress.js';
import { PONG_ECHO_MAX_BYTES } from '../src/http/graphqlWsAdapter.js';
import { KilnClient, ExecutionLogsDocument, SubmitJobDocument, TriggerJobDocument } from '@kiln/sdk';
import { createTestDatabase } from './helpers/db.js';
import { openGraphqlWs } from './helpers/graphqlWs.js';
import { startTestKiln, TEST_SECRET, waitFor, type TestKiln } from './helpers/kiln.js';
import { LiveRun } from './helpers/liveRun.js';
import { startKilnProcess, type KilnProcess } from './helpers/processes.js';

const ME = '{ me { id } }';
const JOB = 'jobs:\n  - name: Live\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident and peak resident memory of a process, in MiB (VmRSS, VmHWM). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function post(url: string, token: string | null, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: JSON.stringify({ query: ME }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** `kiln serve` in its own process (its memory is what is measured), and its base URL. */
async function serveProcess(name: string, env: Record<string, string>): Promise<{ proc: KilnProcess; url: string; drop(): Promise<void> }> {
  const db = await createTestDatabase();
  const proc = startKilnProcess('serve', db.url, name, { HOST: '127.0.0.1', ...env });
  const url = await waitFor(async () => /GraphQL at (http:\/\/\S+)\/graphql/.exec(proc.output())?.[1], 60_000, `kiln serve (${name}) to listen`);
  return { proc, url, drop: () => db.drop() };
}

/** A socket past connection_init whose client then reads nothing at all (its TCP socket is paused). */
async function neverReading(url: string, token: string): Promise<{ ws: WebSocket; raw: Socket; closed: Promise<{ code: number; reason: string }> }> {
  const ws = await openGraphqlWs(url, token);
  const raw = (ws as unknown as { _socket: Socket })._socket;
  raw.pause();
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
  return { ws, raw, closed };
}

/** Sends `message` until `stop()` says so or `ms` pass, keeping at most 4 MiB queued on the client. */
async function flood(ws: WebSocket, message: string, stop: () => boolean, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let sent = 0;
  while (!stop() && Date.now() < deadline && ws.readyState === ws.OPEN) {
    if (ws.bufferedAmount > 4 * 1024 * 1024) {
      await sleep(20);
      continue;
    }
    ws.send(message);
    sent++;
    if (sent % 64 === 0) await sleep(0);
  }
  return sent;
}

describe('a client that floods pings and never reads', () => {
  const localToken = (sub: string) => mintLocalToken(localAuth(new TextEncoder().encode(TEST_SECRET)) as Extract<ReturnType<typeof localAuth>, { mode: 'local' }>, sub, 600);

  it('keeps the server within 150 MB of its memory and gets its socket closed (64 KiB pings, default limits)', { timeout: 180_000 }, async () => {
    const server = await serveProcess('ping-flood', {});
    try {
      const pid = server.proc.child.pid!;
      const before = memoryOf(pid);
      const { ws, raw } = await neverReading(server.url, await localToken('mallory'));
      const ping = JSON.stringify({ type: 'ping', payload: { p: 'x'.repeat(65_000) } });
      const sent = await flood(ws, ping, () => /closed a WebSocket with 1013/.test(server.proc.output()), 60_000);
      expect(server.proc.output()).toMatch(/closed a WebSocket with 1013: rate limit exceeded/);
      // The attacker reads nothing, so it never sees the close frame and goes on sending: the
      // server must drop the connection soon, not read and parse its pings until ws's own
      // 30 s close timeout (the bench saw another user's queries slowed to ~1 s meanwhile).
      const closedAt = Date.now();
      const gone = new Promise<void>((resolve) => raw.once('close', () => resolve()));
      raw.on('error', () => {});
      const after1013 = await flood(ws, ping, () => raw.destroyed, 20_000);
      await Promise.race([gone, sleep(1000)]);
      const lingeredMs = Date.now() - closedAt;
      const after = memoryOf(pid);
      console.log(
        `ping flood: ${sent} pings of 64 KiB sent; server RSS ${before.rss.toFixed(0)} MiB before, peak ${after.peak.toFixed(0)} MiB; ` +
          `the connection was gone ${lingeredMs} ms after the server closed it (${after1013} more pings sent meanwhile)`,
      );
      expect(raw.destroyed).toBe(true);
      expect(lingeredMs).toBeLessThan(5_000);
      // Nor is it read meanwhile: what the client can still push is what the TCP buffers hold
      // (none to a few here; 700 to 1,700 pings a second when the server went on reading).
      expect(after1013).toBeLessThan(200);
      expect(after.peak - before.rss).toBeLessThan(150);
      // (That a big ping gets a bare pong is the last test of this file.)
      // A bystander is served as ever.
      expect(await post(server.url, await localToken('bystander'))).toBe(200);
    } finally {
      await server.proc.stop();
      await server.drop();
    }
  });

  it('stops reading a socket whose answers pile up unsent, and closes it with 1008 (rate limits off)', { timeout: 180_000 }, async () => {
    const server = await serveProcess('slow-reader', { KILN_RATE_LIMIT_RPS: '0', KILN_WS_MAX_BUFFERED: '262144', KILN_WS_STALL_MS: '2000' });
    try {
      const pid = server.proc.child.pid!;
      const before = memoryOf(pid);
      const { ws } = await neverReading(server.url, await localToken('mallory'));
      // Small payloads are echoed: each ping queues a pong the client never takes.
      const ping = JSON.stringify({ type: 'ping', payload: { p: 'x'.repeat(PONG_ECHO_MAX_BYTES - 20) } });
      const sent = await flood(ws, ping, () => /closed a WebSocket with 1008/.test(server.proc.output()), 90_000);
      const after = memoryOf(pid);
      console.log(`never-reading client: ${sent} small pings sent; server RSS ${before.rss.toFixed(0)} MiB before, peak ${after.peak.toFixed(0)} MiB`);
      expect(server.proc.output()).toMatch(/closed a WebSocket with 1008: its client read nothing of \d+ unsent bytes for 2000 ms/);
      expect(after.peak - before.rss).toBeLessThan(150);
      ws.terminate();
      expect(await post(server.url, await localToken('bystander'))).toBe(200);
    } finally {
      await server.proc.stop();
      await server.drop();
    }
  });
});

describe('10,000 tokenless requests from the address of a user following a live log', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it("neither stops the user's subscription nor keeps them from opening a new one", { timeout: 240_000 }, async () => {
    const alice = new KilnClient({ url: k.url, token: await k.token('alice') });
    const { submitJob } = await alice.request(SubmitJobDocument, { spec: JOB });
    const executionId = (await alice.request(TriggerJobDocument, { id: submitJob.jobs[0]!.id })).triggerJob.id;
    const run = new LiveRun(k.kiln.deps.pool, executionId, { flushMs: 5 });
    await run.start();
    const writer = setInterval(() => run.lines(run.log.lastSeq + 1, 2), 100);
    const seen: number[] = [];
    const following = (async () => {
      for await (const _ of alice.subscribe(ExecutionLogsDocument, { executionId })) seen.push(Date.now());
    })();
    const second = new KilnClient({ url: k.url, token: await k.token('alice') });
    try {
      await waitFor(async () => (seen.length > 0 ? true : undefined), 10_000, 'the first lines');
      const statuses: Record<number, number> = {};
      let started = 0;
      const floodStart = Date.now();
      let secondSeen = 0;
      let secondOpenedAt = 0;
      const workers = Array.from({ length: 50 }, async () => {
        while (started < 10_000) {
          started++;
          const status = await post(k.url, null);
          statuses[status] = (statuses[status] ?? 0) + 1;
          // Half-way through, a new authenticated subscription from the same address.
          if (started === 5_000 && secondOpenedAt === 0) {
            secondOpenedAt = Date.now();
            void (async () => {
              for await (const _ of second.subscribe(ExecutionLogsDocument, { executionId, afterSeq: run.log.lastSeq })) secondSeen++;
            })().catch(() => {});
          }
        }
      });
      await Promise.all(workers);
      const floodEnd = Date.now();
      const during = seen.filter((t) => t >= floodStart && t <= floodEnd);
      const gaps = during.slice(1).map((t, i) => t - during[i]!);
      console.log(
        `10,000 tokenless requests in ${((floodEnd - floodStart) / 1000).toFixed(1)} s: ${JSON.stringify(statuses)}; ` +
          `alice received ${during.length} lines meanwhile, longest gap ${Math.max(0, ...gaps)} ms; the new subscription ${secondSeen}`,
      );
      // The flood was limited to its address's budget (200 at once, 50 a second; a window's
      // worth of slack)...
      const { rps, burst } = k.kiln.deps.config.rateLimit;
      expect(statuses[401]!).toBeLessThanOrEqual(2 * burst + rps * ((floodEnd - floodStart) / 1000));
      expect(Object.keys(statuses).sort()).toEqual(['401', '429']);
      // ...and alice's stream went on throughout, and her new subscription got lines.
      expect(during.length).toBeGreaterThan(((floodEnd - floodStart) / 1000) * 5);
      expect(Math.max(0, ...gaps)).toBeLessThan(5_000);
      await waitFor(async () => (secondSeen > 0 ? true : undefined), 10_000, 'lines on the subscription opened during the flood');
      expect(secondOpenedAt).toBeGreaterThan(0);
    } finally {
      clearInterval(writer);
      await run.finish();
      await following.catch(() => {});
      await alice.close();
      await second.close();
    }
  });
});

describe('two API processes on one database', () => {
  let first: TestKiln;
  let second: TestKiln;
  // A window of 100 tokens (100 s at 1 a second): each process takes them from Postgres in
  // blocks of 5 (rateLimit.ts, leasedBudget.ts).
  const BURST = 100;
  const BLOCK = 5;
  beforeAll(async () => {
    const env = { KILN_RATE_LIMIT_RPS: '1', KILN_RATE_LIMIT_BURST: String(BURST) };
    first = await startTestKiln({ worker: false, env });
    second = await startTestKiln({ worker: false, env, databaseUrl: first.databaseUrl });
  });
  afterAll(async () => {
    await second?.stop();
    await first?.stop();
  });

  /** Transactions committed in the shared database so far (each rate-limit round trip is one). */
  async function commits(): Promise<number> {
    // Backends report their counts to the statistics at most once a second.
    await sleep(1500);
    const name = new URL(first.databaseUrl).pathname.slice(1);
    const { rows } = await first.kiln.deps.pool.query<{ n: string }>('select pg_stat_get_db_xact_commit(oid) as n from pg_database where datname = $1', [name]);
    await first.kiln.deps.pool.query('select pg_stat_clear_snapshot()');
    return Number(rows[0]!.n);
  }

  it('give a user one budget, not one each, and another user a budget of their own', async () => {
    const alice = await first.token('alice');
    const before = await commits();
    const statuses: number[] = [];
    for (let i = 0; i < 2 * BURST; i++) statuses.push(await post(i % 2 === 0 ? first.url : second.url, alice));
    const roundTrips = (await commits()) - before;
    const allowed = statuses.filter((s) => s === 200).length;
    console.log(`${2 * BURST} requests of one user alternating between two API processes: ${allowed} allowed; ${roundTrips} transactions in the database meanwhile`);
    expect(new Set(statuses)).toEqual(new Set([200, 429]));
    // One window of BURST (less what a process leased and did not spend, plus a token or two
    // refilled meanwhile), where two limits per process gave 2 * BURST.
    expect(allowed).toBeGreaterThanOrEqual(BURST - 2 * (BLOCK - 1));
    expect(allowed).toBeLessThanOrEqual(BURST + 2);
    // Both processes refused her once the shared budget was spent.
    expect(statuses.slice(-4).every((s) => s === 429)).toBe(true);
    // Tokens are fetched in blocks: far fewer round trips than requests (generous: other
    // statements of the two processes, the statistics' own lag).
    expect(roundTrips).toBeLessThan(BURST / 2);
    const bob = await first.token('bob');
    expect([await post(first.url, bob), await post(second.url, bob)]).toEqual([200, 200]);
  });
});

describe('addresses behind a proxy', () => {
  it('believe X-Forwarded-For only from KILN_TRUSTED_PROXIES, taking the right-most untrusted hop', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '2001:db8::/32', '127.0.0.1']);
    expect(proxies.clientOf('10.1.2.3', '203.0.113.9')).toBe('203.0.113.9');
    expect(proxies.clientOf('::ffff:10.1.2.3', '198.51.100.1, 203.0.113.9, 10.9.9.9')).toBe('203.0.113.9');
    expect(proxies.clientOf('127.0.0.1', ['198.51.100.1', '2001:db8::5'])).toBe('198.51.100.1');
    // A client's own X-Forwarded-For, straight to Kiln, is ignored.
    expect(proxies.clientOf('203.0.113.9', '10.0.0.1')).toBe('203.0.113.9');
    expect(new TrustedProxies([]).clientOf('10.1.2.3', '203.0.113.9')).toBe('10.1.2.3');
    expect(loadConfig({ KILN_TRUSTED_PROXIES: '10.0.0.0/8, fd00::/8 127.0.0.1' }).trustedProxies).toEqual(['10.0.0.0/8', 'fd00::/8', '127.0.0.1']);
    expect(() => loadConfig({ KILN_TRUSTED_PROXIES: '10.0.0.0/33' })).toThrow(/KILN_TRUSTED_PROXIES.*10.0.0.0\/33/);
    expect(() => loadConfig({ KILN_TRUSTED_PROXIES: 'proxy.local' })).toThrow(/KILN_TRUSTED_PROXIES/);
  });

  it('give each forwarded client its own budget behind a trusted proxy, and none without one', async () => {
    const env = { KILN_RATE_LIMIT_RPS: '1', KILN_RATE_LIMIT_BURST: '5' };
    const trusting = await startTestKiln({ worker: false, env: { ...env, KILN_TRUSTED_PROXIES: '127.0.0.1/32' } });
    const plain = await startTestKiln({ worker: false, env, databaseUrl: trusting.databaseUrl });
    try {
      const from = (ip: string) => ({ 'x-forwarded-for': ip });
      const burst = async (url: string, ip: string) => {
        const out: number[] = [];
        for (let i = 0; i < 8; i++) out.push(await post(url, null, from(ip)));
        return out.filter((s) => s === 401).length;
      };
      // Each forwarded client has 5, whoever else the proxy forwards.
      expect(await burst(trusting.url, '198.51.100.1')).toBe(5);
      expect(await burst(trusting.url, '198.51.100.2')).toBe(5);
      // Without trusted proxies the header is ignored: all share the peer's (127.0.0.1's) bucket,
      // which the first burst spends.
      const plainStatuses = [await burst(plain.url, '198.51.100.3'), await burst(plain.url, '198.51.100.4')];
      expect(plainStatuses[0]! + plainStatuses[1]!).toBeLessThanOrEqual(6);
    } finally {
      await plain.stop();
      await trusting.stop();
    }
  });
});

describe('sockets per user and per address', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({ worker: false, env: { KILN_WS_MAX_PER_USER: '2', KILN_WS_MAX_PENDING_PER_ADDRESS: '3' } });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it("closes a user's socket past their cap with 1008 naming it; another user still connects", async () => {
    const token = await k.token('carol');
    const open = [await openGraphqlWs(k.url, token), await openGraphqlWs(k.url, token)];
    try {
      const error = await openGraphqlWs(k.url, token).then(
        () => null,
        (err: Error) => err.message,
      );
      expect(error).toBe('closed with 1008');
      const third = new WebSocket(`${k.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
      await new Promise((r) => third.once('open', r));
      third.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
      const closed = await new Promise<{ code: number; reason: string }>((r) => third.once('close', (code, reason) => r({ code, reason: String(reason) })));
      expect(closed).toEqual({ code: 1008, reason: 'too many sockets: at most 2 per user' });
      const other = await openGraphqlWs(k.url, await k.token('dan'));
      other.close();
      // A closed socket frees its place.
      open.pop()!.close();
      await sleep(200);
      open.push(await openGraphqlWs(k.url, token));
    } finally {
      for (const ws of open) ws.close();
    }
  });

  it('refuses upgrades past the sockets an address holds without connection_init with 429 naming the cap', async () => {
    const pending = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const ws = new WebSocket(`${k.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
        await new Promise((r) => ws.once('open', r));
        return ws;
      }),
    );
    try {
      const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const ws = new WebSocket(`${k.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
        ws.once('open', () => reject(new Error('accepted')));
        ws.once('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
      });
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.body).errors[0].message).toBe('too many WebSocket connections from this address waiting for connection_init: at most 3');
      // Once one of them says who it is, the address has room again.
      pending[0]!.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${await k.token('erin')}` } }));
      await new Promise((r) => pending[0]!.once('message', r));
      const next = await openGraphqlWs(k.url, await k.token('erin'));
      next.close();
    } finally {
      for (const ws of pending) ws.close();
    }
  });

  it('echoes a small ping payload and answers a big one with a bare pong', async () => {
    const ws = await openGraphqlWs(k.url, await k.token('frank'));
    try {
      const pongs: Array<{ type: string; payload?: unknown }> = [];
      ws.on('message', (d) => pongs.push(JSON.parse(String(d))));
      ws.send(JSON.stringify({ type: 'ping', payload: { n: 1 } }));
      ws.send(JSON.stringify({ type: 'ping', payload: { p: 'x'.repeat(10_000) } }));
      await waitFor(async () => (pongs.length === 2 ? true : undefined), 5_000, 'two pongs');
      expect(pongs).toEqual([{ type: 'pong', payload: { n: 1 } }, { type: 'pong' }]);
    } finally {
      ws.close();
    }
  });
});
