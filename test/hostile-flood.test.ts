import { gzipSync } from 'node:zlib';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openGraphqlWs } from './helpers/graphqlWs.js';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { MAX_GRAPHQL_BODY_BYTES } from '../src/http/queryLimits.js';
import { addressKey, bodyCost, RateLimiter } from '../src/http/rateLimit.js';
import { TRY_AGAIN_LATER } from '../src/http/websocket.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

const RPS = 20;
const BURST = 50;
const ME = `{ me { id } }`;

type Answer = { status: number; ms: number; retryAfter: string | null; body: { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string; retryAfterSeconds?: number } }> } };

async function post(url: string, token: string | null, query = ME): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
  const body = (await res.json()) as Answer['body'];
  return { status: res.status, ms: performance.now() - t0, retryAfter: res.headers.get('retry-after'), body };
}

function countBy<T>(items: T[], key: (t: T) => string | number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the budget of a caller', () => {
  it('allows a burst, refills at the rate, and says when to come back', async () => {
    // 3 tokens per window of 0.3 s: 10 a second sustained.
    const limiter = new RateLimiter({ rps: 10, burst: 3 });
    expect([await limiter.take('a'), await limiter.take('a'), await limiter.take('a')]).toEqual([null, null, null]);
    const refused = await limiter.take('a');
    expect(refused).not.toBeNull();
    expect(refused!.retryAfterMs).toBeGreaterThan(0);
    expect(refused!.retryAfterMs).toBeLessThanOrEqual(300);
    expect(refused!.retryAfterSeconds).toBe(1);
    // Another caller has a budget of its own.
    expect(await limiter.take('b')).toBeNull();
    await sleep(refused!.retryAfterMs + 20);
    expect(await limiter.take('a')).toBeNull();
    // Never more than the burst, however long the wait.
    await sleep(1000);
    const after = await Promise.all([limiter.take('a'), limiter.take('a'), limiter.take('a'), limiter.take('a')]);
    expect(after.filter((r) => r === null)).toHaveLength(3);
  });

  it('charges a heavier request more: it needs at most a full window, and pays its whole cost in debt', async () => {
    const limiter = new RateLimiter({ rps: 1, burst: 5 });
    expect(await limiter.take('a', 4)).toBeNull();
    const refused = await limiter.take('a', 4);
    expect(refused).not.toBeNull();
    expect(refused!.retryAfterSeconds).toBeGreaterThanOrEqual(4);
    expect(refused!.retryAfterSeconds).toBeLessThanOrEqual(5);
    expect(await limiter.take('b', 17)).toBeNull();
    expect(await limiter.tokens('b')).toBe(-12);
    // In debt: the next request waits for the window to end.
    expect(await limiter.take('b')).toMatchObject({ retryAfterSeconds: 5 });
  });

  it('charges work already done as debt, refusing nothing', async () => {
    const limiter = new RateLimiter({ rps: 2, burst: 4 });
    await limiter.charge('a', 200);
    expect(await limiter.tokens('a')).toBe(-196);
    expect(await limiter.take('a')).toMatchObject({ retryAfterSeconds: 2 });
    expect(bodyCost(0)).toBe(1);
    expect(bodyCost(64 * 1024 - 1)).toBe(1);
    expect(bodyCost(MAX_GRAPHQL_BODY_BYTES)).toBe(17);
  });

  it('keys an IPv6 client by its /64 and an IPv4 one (however written) by its address', async () => {
    expect(addressKey('203.0.113.7')).toBe('ip:203.0.113.7');
    expect(addressKey('::ffff:203.0.113.7')).toBe('ip:203.0.113.7');
    expect(addressKey('::FFFF:cb00:7107')).toBe('ip:203.0.113.7');
    expect(addressKey('::ffff:203.0.113.8')).not.toBe(addressKey('::ffff:203.0.113.7'));
    expect(addressKey('2001:db8:1:2::1')).toBe('ip:2001:db8:1:2::/64');
    expect(addressKey('2001:0DB8:0001:0002:ffff:ffff:ffff:fffe')).toBe('ip:2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:a:b:1.2.3.4')).toBe('ip:2001:db8:1:2::/64');
    expect(addressKey('fe80::1%eth0')).toBe('ip:fe80:0:0:0::/64');
    expect(addressKey('2001:db8:1:3::1')).not.toBe(addressKey('2001:db8:1:2::1'));
    expect(addressKey('::1')).toBe('ip:0:0:0:0::/64');
    expect(addressKey(undefined)).toBe('ip:unknown');

    // Rotating through addresses of one /64 gets no fresh burst.
    const limiter = new RateLimiter({ rps: 1, burst: 10 });
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => limiter.take(addressKey(`2001:db8:aa:bb:${i.toString(16)}::${i}`))));
    expect(answers.filter((r) => r === null)).toHaveLength(10);
    expect(await limiter.take(addressKey('2001:db8:aa:bc::1'))).toBeNull();
  });

  it('is off with KILN_RATE_LIMIT_RPS=0, and validates its variables', async () => {
    const off = new RateLimiter(loadConfig({ KILN_RATE_LIMIT_RPS: '0' }).rateLimit);
    for (let i = 0; i < 1000; i++) expect(await off.take('a')).toBeNull();
    expect(loadConfig({}).rateLimit).toEqual({ rps: 50, burst: 200 });
    expect(() => loadConfig({ KILN_RATE_LIMIT_RPS: 'fast' })).toThrow(ConfigError);
    expect(() => loadConfig({ KILN_RATE_LIMIT_BURST: '0' })).toThrow(/KILN_RATE_LIMIT_BURST/);
  });
});

describe('1,000 concurrent requests from one user', () => {
  let k: TestKiln;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    k = await startTestKiln({ worker: false, env: { KILN_RATE_LIMIT_RPS: String(RPS), KILN_RATE_LIMIT_BURST: String(BURST) } });
    alice = await k.token('alice');
    bob = await k.token('bob');
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('answers some, refuses the rest with 429 RATE_LIMITED, and serves another user meanwhile', { timeout: 120_000 }, async () => {
    const t0 = performance.now();
    const flood = Promise.all(Array.from({ length: 1000 }, () => post(k.url, alice)));
    // Bob's requests, one after the other, for as long as the flood lasts (at least 10), paced
    // well under his own limit: an unpaced loop of 3 ms requests would exhaust his bucket on a
    // slow run and be refused for his own sake, not because of alice.
    let flooding = true;
    void flood.finally(() => (flooding = false));
    const bobs: Answer[] = [];
    while (flooding || bobs.length < 10) {
      const started = performance.now();
      bobs.push(await post(k.url, bob));
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 / (RPS / 2) - (performance.now() - started))));
    }
    const answers = await flood;
    const elapsedS = (performance.now() - t0) / 1000;

    const statuses = countBy(answers, (a) => a.status);
    const bobMs = bobs.map((b) => b.ms).sort((x, y) => x - y);
    console.log(
      `1,000 requests as alice in ${elapsedS.toFixed(1)} s: ${JSON.stringify(statuses)}; ` +
        `bob ${bobs.length} requests, latency median ${bobMs[Math.floor(bobMs.length / 2)]!.toFixed(0)} ms, max ${bobMs.at(-1)!.toFixed(0)} ms`,
    );

    // Only answers and refusals: no 5xx, no other status, no dropped connection.
    expect(Object.keys(statuses).sort()).toEqual(['200', '429']);
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    expect(ok.every((a) => a.body.errors === undefined && (a.body.data as { me: { id: string } }).me.id === 'alice')).toBe(true);
    // The burst, plus what refilled while the flood lasted (and a little slack for timing).
    expect(ok.length).toBeGreaterThanOrEqual(BURST);
    expect(ok.length).toBeLessThanOrEqual(BURST + Math.ceil(RPS * elapsedS) + 5);
    for (const r of refused) {
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(r.body.errors).toHaveLength(1);
      expect(r.body.errors![0]!.extensions).toEqual({ code: 'RATE_LIMITED', retryAfterSeconds: Number(r.retryAfter) });
      expect(r.body.errors![0]!.message).toMatch(/^rate limit exceeded: .*; retry in \d+ s$/);
    }

    // Bob was never refused, and not starved: generous bounds for a loaded two-core machine.
    expect(bobs.every((b) => b.status === 200 && (b.body.data as { me: { id: string } }).me.id === 'bob')).toBe(true);
    expect(bobMs[Math.floor(bobMs.length / 2)]!).toBeLessThan(2_000);
    expect(bobMs.at(-1)!).toBeLessThan(10_000);

    // After the window alice is served again.
    const wait = Math.max(...refused.map((r) => Number(r.retryAfter)));
    await new Promise((r) => setTimeout(r, wait * 1000));
    const again = await post(k.url, alice);
    expect(again.status).toBe(200);
    expect((await fetch(`${k.url}/healthz`)).status).toBe(200);
  });

  it('limits REST calls from the same bucket, with the REST error shape', async () => {
    const carol = await k.token('carol');
    const answers = await Promise.all(
      Array.from({ length: 2 * BURST }, () => fetch(`${k.url}/api/v1/job_status/00000000-0000-4000-8000-000000000000`, { headers: { authorization: `Bearer ${carol}` } })),
    );
    const statuses = countBy(answers, (a) => a.status);
    // Allowed calls reach the route (an unknown job: 404); the others never do.
    expect(Object.keys(statuses).sort()).toEqual(['404', '429']);
    const refused = answers.find((a) => a.status === 429)!;
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ code: 'RATE_LIMITED', error: expect.stringMatching(/retry in \d+ s/), retry_after_seconds: expect.any(Number) });
  });

  it('counts requests without a valid token by client address, and still answers 401 within the limit', async () => {
    const answers = await Promise.all(Array.from({ length: 2 * BURST }, (_, i) => post(k.url, i % 2 === 0 ? null : 'not-a-token')));
    const statuses = countBy(answers, (a) => a.status);
    expect(Object.keys(statuses).sort()).toEqual(['401', '429']);
    expect(answers.find((a) => a.status === 401)!.body.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
    // A user with a token has a bucket of their own, whoever shares their address.
    expect((await post(k.url, bob)).status).toBe(200);
  });

  it('counts operations over graphql-ws per user, refusing the excess with RATE_LIMITED on the socket', async () => {
    const dave = await k.token('dave');
    // The unauthenticated flood above drained this address's bucket, which the upgrade takes from.
    await new Promise((r) => setTimeout(r, 500));
    const client: Client = createClient({
      url: `${k.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${dave}` },
      retryAttempts: 0,
    });
    try {
      const results = await Promise.all(
        Array.from(
          { length: 2 * BURST },
          () =>
            new Promise<string>((resolve) => {
              client.subscribe(
                { query: ME },
                {
                  next: () => {},
                  error: (errors) => resolve((errors as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code ?? 'ERROR'),
                  complete: () => resolve('OK'),
                },
              );
            }),
        ),
      );
      const outcomes = countBy(results, (r) => r);
      expect(Object.keys(outcomes).sort()).toEqual(['OK', 'RATE_LIMITED']);
      // The burst, less the token connection_init took.
      expect(outcomes.OK).toBeGreaterThanOrEqual(BURST - 1);
      // The socket itself stays open for the operations allowed later: once the window of
      // BURST / RPS = 2.5 s has ended (budgets are fixed windows: rateLimit.ts).
      await new Promise((r) => setTimeout(r, (BURST / RPS) * 1000 + 500));
      const later = await new Promise<string>((resolve) =>
        client.subscribe({ query: ME }, { next: () => {}, error: () => resolve('ERROR'), complete: () => resolve('OK') }),
      );
      expect(later).toBe('OK');
    } finally {
      await client.dispose();
    }
  });
});

/** A graphql-transport-ws socket past connection_init, with each operation's outcome recorded. */
async function openSocket(url: string, token: string): Promise<{ ws: WebSocket; outcomes: Map<string, string> }> {
  const ws = await openGraphqlWs(url, token);
  // Each operation's outcome by id: OK, or the code of its error.
  const outcomes = new Map<string, string>();
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { id: string; type: string; payload?: Array<{ extensions?: { code?: string } }> };
    if (m.type === 'error') outcomes.set(m.id, m.payload?.[0]?.extensions?.code ?? 'ERROR');
    else if (m.type === 'complete' && !outcomes.has(m.id)) outcomes.set(m.id, 'OK');
  });
  return { ws, outcomes };
}

/** A JSON GraphQL request of `{ me { id } }` padded (with an unused variable) to exactly `bytes` bytes. */
function paddedRequest(bytes: number, wrap: (body: object) => object = (b) => b): string {
  const empty = JSON.stringify(wrap({ query: ME, variables: { pad: '' } }));
  return JSON.stringify(wrap({ query: ME, variables: { pad: 'x'.repeat(bytes - empty.length) } }));
}

describe('bodies, messages and sockets, charged by what they cost', () => {
  // One token a second: what a test spends is what it measures, give or take a refill or two.
  const SLOW_BURST = 40;
  let k: TestKiln;

  beforeAll(async () => {
    k = await startTestKiln({ worker: false, env: { KILN_RATE_LIMIT_RPS: '1', KILN_RATE_LIMIT_BURST: String(SLOW_BURST) } });
  });
  afterAll(async () => {
    await k?.stop();
  });

  /** How many of `n` small requests at once `token` gets answered (the rest: 429). */
  async function allowedNow(token: string, n = SLOW_BURST): Promise<number> {
    const answers = await Promise.all(Array.from({ length: n }, () => post(k.url, token)));
    expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true);
    return answers.filter((a) => a.status === 200).length;
  }

  it('charges a chunked 1 MiB body (no Content-Length) 17 tokens, like one that declares its length', async () => {
    const token = await k.token('erin');
    const body = paddedRequest(MAX_GRAPHQL_BODY_BYTES);
    expect(Buffer.byteLength(body)).toBe(MAX_GRAPHQL_BODY_BYTES);
    // A stream body goes out with Transfer-Encoding: chunked, in 64 KiB pieces.
    const chunks = Array.from({ length: 16 }, (_, i) => body.slice(i * 65536, (i + 1) * 65536));
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    const res = await fetch(`${k.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Answer['body']).data).toEqual({ me: { id: 'erin' } });
    // 40 - 17 = 23 left, plus a token a second meanwhile; charged 1, it would leave 39.
    const allowed = await allowedNow(token);
    expect(allowed).toBeGreaterThanOrEqual(SLOW_BURST - 17 - 1);
    expect(allowed).toBeLessThanOrEqual(SLOW_BURST - 17 + 5);
  });

  it('charges a gzipped body by its decompressed size', async () => {
    const token = await k.token('zip');
    const zipped = gzipSync(paddedRequest(MAX_GRAPHQL_BODY_BYTES));
    expect(zipped.length).toBeLessThan(65536);
    const res = await fetch(`${k.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: `Bearer ${token}` },
      body: zipped,
    });
    expect(res.status).toBe(200);
    const allowed = await allowedNow(token);
    expect(allowed).toBeGreaterThanOrEqual(SLOW_BURST - 17 - 1);
    expect(allowed).toBeLessThanOrEqual(SLOW_BURST - 17 + 5);
  });

  it('charges a 1 MiB subscribe message 17 tokens, and connection_init one', async () => {
    const token = await k.token('frank');
    const { ws, outcomes } = await openSocket(k.url, token);
    try {
      const big = paddedRequest(MAX_GRAPHQL_BODY_BYTES, (payload) => ({ id: 'big', type: 'subscribe', payload }));
      expect(Buffer.byteLength(big)).toBe(MAX_GRAPHQL_BODY_BYTES);
      ws.send(big);
      for (let i = 0; i < SLOW_BURST; i++) ws.send(JSON.stringify({ id: `op${i}`, type: 'subscribe', payload: { query: ME } }));
      const deadline = Date.now() + 30_000;
      while (outcomes.size < SLOW_BURST + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(outcomes.get('big')).toBe('OK');
      const small = [...outcomes].filter(([id]) => id !== 'big').map(([, outcome]) => outcome);
      expect(new Set(small)).toEqual(new Set(['OK', 'RATE_LIMITED']));
      // 40 - 1 (connection_init) - 17 = 22 left, plus a token a second meanwhile.
      const ok = small.filter((o) => o === 'OK').length;
      expect(ok).toBeGreaterThanOrEqual(SLOW_BURST - 18 - 1);
      expect(ok).toBeLessThanOrEqual(SLOW_BURST - 18 + 5);
    } finally {
      ws.close();
    }
  });

  it("refuses connection_init over its user's limit with 1013 (Try Again Later)", async () => {
    const token = await k.token('gina');
    const ws = new WebSocket(`${k.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    // Her bucket is emptied over HTTP, just before connection_init: the socket shares it.
    expect(await allowedNow(token, SLOW_BURST + 10)).toBeLessThan(SLOW_BURST + 10);
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    const { code, reason } = await closed;
    expect(code).toBe(TRY_AGAIN_LATER);
    expect(reason).toMatch(/^rate limit exceeded: .*; retry in \d+ s$/);
  });

  it('counts WebSocket upgrades by client address, refusing the excess with 429 before the handshake', async () => {
    const attempts = 2 * SLOW_BURST;
    const results = await Promise.all(
      Array.from(
        { length: attempts },
        () =>
          new Promise<{ status: number; retryAfter?: string; body?: string; ws?: WebSocket }>((resolve, reject) => {
            const ws = new WebSocket(`${k.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
            ws.once('open', () => resolve({ status: 101, ws }));
            ws.once('unexpected-response', (_req, res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
              res.on('error', reject);
            });
            ws.once('error', reject);
          }),
      ),
    );
    try {
      const statuses = countBy(results, (r) => r.status);
      console.log(`${attempts} WebSocket upgrades at once from one address: ${JSON.stringify(statuses)}`);
      expect(Object.keys(statuses).sort()).toEqual(['101', '429']);
      // Earlier tests' upgrades took a few tokens already; a token a second refills meanwhile.
      expect(statuses['101']).toBeLessThanOrEqual(SLOW_BURST + 3);
      expect(statuses['429']).toBeGreaterThanOrEqual(attempts - SLOW_BURST - 3);
      for (const r of results.filter((x) => x.status === 429)) {
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(JSON.parse(r.body!)).toEqual({
          errors: [{ message: expect.stringMatching(/^rate limit exceeded: .*; retry in \d+ s$/), extensions: { code: 'RATE_LIMITED', retryAfterSeconds: Number(r.retryAfter) } }],
        });
      }
      // HTTP requests with a token are not the address's: still served.
      expect((await post(k.url, await k.token('henry'))).status).toBe(200);
    } finally {
      for (const r of results) r.ws?.terminate();
    }
  });
});
