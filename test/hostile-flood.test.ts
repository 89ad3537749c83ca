import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { RateLimiter } from '../src/http/rateLimit.js';
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

describe('the token bucket', () => {
  it('allows a burst, refills at the rate, and says when to come back', () => {
    let now = 0;
    const limiter = new RateLimiter({ rps: 10, burst: 3 }, () => now);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([null, null, null]);
    expect(limiter.take('a')).toEqual({ retryAfterMs: 100, retryAfterSeconds: 1 });
    // Another caller has a bucket of its own.
    expect(limiter.take('b')).toBeNull();
    now = 100;
    expect(limiter.take('a')).toBeNull();
    expect(limiter.take('a')).not.toBeNull();
    // Never more than the burst, however long the wait.
    now = 1_000_000;
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a'), limiter.take('a')].filter((r) => r === null)).toHaveLength(3);
  });

  it('charges a heavier request more, never more than a full bucket', () => {
    let now = 0;
    const limiter = new RateLimiter({ rps: 1, burst: 5 }, () => now);
    expect(limiter.take('a', 4)).toBeNull();
    expect(limiter.take('a', 4)).toEqual({ retryAfterMs: 3000, retryAfterSeconds: 3 });
    now = 10_000;
    expect(limiter.take('a', 1000)).toBeNull();
  });

  it('forgets callers whose bucket is full again, so memory follows the recent callers', () => {
    let now = 0;
    const limiter = new RateLimiter({ rps: 1, burst: 2 }, () => now);
    for (let i = 0; i < 100; i++) limiter.take(`ip:${i}`);
    expect(limiter.size).toBe(100);
    now = 61_000;
    limiter.take('late');
    expect(limiter.size).toBe(1);
  });

  it('is off with KILN_RATE_LIMIT_RPS=0, and validates its variables', () => {
    const off = new RateLimiter(loadConfig({ KILN_RATE_LIMIT_RPS: '0' }).rateLimit);
    for (let i = 0; i < 1000; i++) expect(off.take('a')).toBeNull();
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
    // Bob's requests, one after the other, for as long as the flood lasts (at least 10).
    let flooding = true;
    void flood.finally(() => (flooding = false));
    const bobs: Answer[] = [];
    while (flooding || bobs.length < 10) bobs.push(await post(k.url, bob));
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
      expect(outcomes.OK).toBeGreaterThanOrEqual(BURST);
      // The socket itself stays open for the operations allowed later.
      await new Promise((r) => setTimeout(r, 1000));
      const later = await new Promise<string>((resolve) =>
        client.subscribe({ query: ME }, { next: () => {}, error: () => resolve('ERROR'), complete: () => resolve('OK') }),
      );
      expect(later).toBe('OK');
    } finally {
      await client.dispose();
    }
  });
});
