import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

/** `job { lastExecution { job { lastExecution ... } } }`, `levels` fields deep. */
function deepQuery(levels: number): string {
  let body = 'id';
  for (let level = levels - 1; level >= 1; level--) body = `${level % 2 === 1 ? 'job' : 'lastExecution'} { ${body} }`;
  return `query Deep($id: ID!) { job(id: $id) { ${body.replace(/^job \{ /, '').replace(/ \}$/, '')} } }`;
}

function aliasQuery(count: number): string {
  return `{ ${Array.from({ length: count }, (_, i) => `a${i}: me { id }`).join(' ')} }`;
}

const DEEP = deepQuery(20);
const ALIASES = aliasQuery(50);
const INTROSPECTION = '{ __schema { queryType { name } } }';
const SOME_ID = '00000000-0000-4000-8000-000000000000';

type WsResult = { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } }> };

/** Runs one operation over graphql-ws: its result, or the errors it was refused with. */
function overSocket(client: Client, query: string, variables: Record<string, unknown> = {}): Promise<WsResult> {
  return new Promise((resolve) => {
    let result: WsResult = {};
    client.subscribe(
      { query, variables },
      {
        next: (r) => (result = r as WsResult),
        error: (errors) => resolve({ errors: errors as WsResult['errors'] }),
        complete: () => resolve(result),
      },
    );
  });
}

describe('query limits', () => {
  let k: TestKiln;
  let token: string;
  let socket: Client;

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    token = await k.token('alice');
    socket = createClient({ url: `${k.url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  });
  afterAll(async () => {
    await socket?.dispose();
    await k?.stop();
  });

  it('builds the queries it means to: 20 levels deep, 50 aliases', () => {
    expect(DEEP.match(/\{/g)!.length).toBe(20);
    expect(ALIASES.match(/: me/g)!.length).toBe(50);
  });

  it('answers ordinary queries on both transports', async () => {
    const shallow = deepQuery(6);
    const http = await k.gql(shallow, { id: SOME_ID }, token);
    expect(http.errors).toBeUndefined();
    expect(http.data).toEqual({ job: null });
    expect(await overSocket(socket, shallow, { id: SOME_ID })).toEqual({ data: { job: null } });
    expect((await overSocket(socket, aliasQuery(10))).errors).toBeUndefined();
  });

  it('refuses a query 20 levels deep over HTTP and over the socket', async () => {
    const http = await k.gql(DEEP, { id: SOME_ID }, token);
    expect(http.status).toBe(400);
    expect(http.errors![0]).toMatchObject({ message: expect.stringMatching(/depth limit of 12 exceeded, found 20/), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
    const ws = await overSocket(socket, DEEP, { id: SOME_ID });
    expect(ws.data).toBeUndefined();
    expect(ws.errors![0]).toMatchObject({ message: expect.stringMatching(/depth limit of 12 exceeded, found 20/), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
  });

  it('refuses a query with 50 aliases over HTTP and over the socket', async () => {
    const http = await k.gql(ALIASES, {}, token);
    expect(http.status).toBe(400);
    expect(http.errors![0]).toMatchObject({ message: expect.stringMatching(/Aliases limit of 15 exceeded, found 50/), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
    const ws = await overSocket(socket, ALIASES);
    expect(ws.errors![0]).toMatchObject({ message: expect.stringMatching(/Aliases limit of 15 exceeded, found 50/), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
  });

  it('refuses a costly query (many lists of lists) on both transports', async () => {
    const costly = `{ ${Array.from({ length: 15 }, (_, i) => `j${i}: jobs(first: 100) { edges { node { executions(first: 100) { edges { node { steps { name status } logs { text } } } } } } }`).join(' ')} }`;
    // 15 x 100 x 100 executions with their steps and logs: the row budget, named (queryCost.ts).
    const http = await k.gql(costly, {}, token);
    expect(http.errors![0]!.message).toMatch(/may return up to [\d,]+ rows .* the limit per request is 20,000 \(KILN_QUERY_MAX_ROWS\)/);
    const ws = await overSocket(socket, costly);
    expect(ws.errors![0]!.message).toMatch(/may return up to [\d,]+ rows .* the limit per request is 20,000 \(KILN_QUERY_MAX_ROWS\)/);
  });

  it('allows introspection by default (the playground needs it)', async () => {
    expect((await k.gql(INTROSPECTION, {}, token)).data).toEqual({ __schema: { queryType: { name: 'Query' } } });
  });
});

describe('production switches', () => {
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    k = await startTestKiln({ worker: false, env: { KILN_GRAPHQL_INTROSPECTION: 'false', KILN_PLAYGROUND: 'false', KILN_GRAPHQL_MAX_DEPTH: '4' } });
    token = await k.token('alice');
  });
  afterAll(() => k?.stop());

  it('refuses introspection over HTTP and over the socket when it is turned off', async () => {
    const http = await k.gql(INTROSPECTION, {}, token);
    expect(http.errors![0]!.message).toMatch(/introspection/i);
    const socket = createClient({ url: `${k.url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    try {
      const ws = await overSocket(socket, INTROSPECTION);
      expect(ws.errors![0]!.message).toMatch(/introspection/i);
      expect((await overSocket(socket, deepQuery(5), { id: SOME_ID })).errors![0]!.message).toMatch(/depth limit of 4 exceeded/);
    } finally {
      await socket.dispose();
    }
  });

  it('serves no playground when it is turned off', async () => {
    const page = await fetch(`${k.url}/playground`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(404);
    const browser = await fetch(`${k.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(browser.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
  });
});
