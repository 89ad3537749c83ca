import { createClient } from 'graphql-ws';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  KilnApiError,
  KilnClient,
  KilnSocketClosedError,
  ExecutionLogsDocument,
  ExecutionUpdatedDocument,
  MeDocument,
  SubmitJobDocument,
  TriggerJobDocument,
} from '@kiln/sdk';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { LiveRun } from './helpers/liveRun.js';

let k: TestKiln;
let alice: KilnClient;
let aliceJob: string;
let aliceExecution: string;

const JOB = 'jobs:\n  - name: Mine\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n';

/** The close code of a socket the server refused, as the graphql-ws client reports it. */
async function closeCodeOf(client: KilnClient): Promise<{ code: number; reason: string }> {
  try {
    for await (const _ of client.subscribe(ExecutionUpdatedDocument, {})) break;
  } catch (err) {
    if (err instanceof KilnSocketClosedError) return { code: err.code, reason: err.reason };
    throw err;
  } finally {
    await client.close();
  }
  throw new Error('the socket was accepted');
}

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  alice = new KilnClient({ url: k.url, token: await k.token('alice') });
  const { submitJob } = await alice.request(SubmitJobDocument, { spec: JOB });
  aliceJob = submitJob.jobs[0]!.id;
  aliceExecution = (await alice.request(TriggerJobDocument, { id: aliceJob })).triggerJob.id;
});
afterAll(async () => {
  await alice?.close();
  await k?.stop();
});

describe('graphql-ws authentication', () => {
  it('closes a socket without a token with 4403', async () => {
    const bare = createClient({ url: `${k.url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
    const closed = await new Promise<{ code: number }>((resolve) => {
      bare.subscribe({ query: '{ me { id } }' }, { next: () => {}, complete: () => resolve({ code: 0 }), error: (e) => resolve(e as { code: number }) });
    });
    await bare.dispose();
    expect(closed.code).toBe(4403);
  });

  it('closes a socket with a malformed, a wrongly signed or an expired token with 4403', async () => {
    const now = Math.floor(Date.now() / 1000);
    const sign = (secret: string, exp: number) =>
      new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('kiln-local').setAudience('kiln').setIssuedAt(now - 120).setExpirationTime(exp).sign(new TextEncoder().encode(secret));
    const tokens = ['not-a-jwt', await sign('another-secret-that-is-at-least-32-bytes', now + 600), await sign('kiln-test-secret-that-is-at-least-32-bytes-long', now - 60)];
    for (const token of tokens) {
      expect(await closeCodeOf(new KilnClient({ url: k.url, token }))).toMatchObject({ code: 4403 });
    }
  });

  it('accepts a good token on the same socket path', async () => {
    const client = new KilnClient({ url: k.url, token: await k.token('alice') });
    try {
      // A query over the socket proves the connection was acknowledged.
      const results: string[] = [];
      for await (const r of client.subscribe(MeDocument)) results.push(r.me.id);
      expect(results).toEqual(['alice']);
    } finally {
      await client.close();
    }
  });
});

describe('graphql-ws ownership', () => {
  it("refuses another user's execution and job with NOT_FOUND, and the socket goes on serving its own", async () => {
    const bob = new KilnClient({ url: k.url, token: await k.token('bob') });
    try {
      const attempts = [
        () => bob.subscribe(ExecutionLogsDocument, { executionId: aliceExecution }),
        () => bob.subscribe(ExecutionUpdatedDocument, { executionId: aliceExecution }),
        () => bob.subscribe(ExecutionUpdatedDocument, { jobId: aliceJob }),
        () => bob.subscribe(ExecutionLogsDocument, { executionId: '00000000-0000-4000-8000-000000000000' }),
      ];
      for (const subscribe of attempts) {
        const error = await (async () => {
          try {
            for await (const _ of subscribe()) return null;
          } catch (err) {
            return err;
          }
          return null;
        })();
        expect(error).toBeInstanceOf(KilnApiError);
        expect((error as KilnApiError).code).toBe('NOT_FOUND');
      }
      const mine: string[] = [];
      for await (const r of bob.subscribe(MeDocument)) mine.push(r.me.id);
      expect(mine).toEqual(['bob']);
    } finally {
      await bob.close();
    }
  });
});

describe('token expiry', () => {
  it('closes the socket with 4403 when the token expires mid-stream', async () => {
    const run = new LiveRun(k.kiln.deps.pool, aliceExecution, { flushMs: 5 });
    await run.start();
    const shortLived = new KilnClient({ url: k.url, token: await k.token('alice', 2) });
    const writer = setInterval(() => run.lines(run.log.lastSeq + 1, 5), 50);
    const started = Date.now();
    let received = 0;
    let closed: KilnSocketClosedError | null = null;
    try {
      for await (const _ of shortLived.subscribe(ExecutionLogsDocument, { executionId: aliceExecution })) received++;
    } catch (err) {
      closed = err as KilnSocketClosedError;
    } finally {
      clearInterval(writer);
      await shortLived.close();
    }
    expect(closed).toBeInstanceOf(KilnSocketClosedError);
    expect(closed).toMatchObject({ code: 4403, reason: 'Forbidden: token expired' });
    // Lines flowed before the token ran out; the close came with the expiry (exp has 1 s steps).
    expect(received).toBeGreaterThan(10);
    expect(Date.now() - started).toBeGreaterThan(900);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('socket liveness', () => {
  let live: TestKiln;
  beforeAll(async () => {
    live = await startTestKiln({ worker: false, env: { KILN_WS_KEEPALIVE_MS: '400' } });
  });
  afterAll(() => live?.stop());

  /** An authenticated raw socket; `autoPong: false` makes it a client that never answers pings. */
  async function openSocket(autoPong: boolean): Promise<{ ws: WebSocket; closed: Promise<number> }> {
    const ws = new WebSocket(`${live.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', { autoPong });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.once('open', async () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${await live.token('alice')}` } })));
      ws.on('message', (raw) => {
        if ((JSON.parse(String(raw)) as { type: string }).type === 'connection_ack') resolve();
      });
    });
    return { ws, closed };
  }

  it('drops a socket that neither answers pings nor reads, and keeps one that answers', async () => {
    const dead = await openSocket(false);
    const alive = await openSocket(true);
    const started = Date.now();
    // Terminated by the server: the client sees an abnormal closure (1006).
    expect(await dead.closed).toBe(1006);
    expect(Date.now() - started).toBeLessThan(5_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
    alive.ws.close();
  });
});
