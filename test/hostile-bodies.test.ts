import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { openGraphqlWs } from './helpers/graphqlWs.js';
import { MAX_GRAPHQL_BODY_BYTES } from '../src/http/queryLimits.js';
import { MESSAGE_TOO_BIG } from '../src/http/websocket.js';
import { MAX_JOB_FILE_BYTES } from '../src/jobfile/parse.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';

const SUBMIT = `mutation($spec: String!) { submitJob(spec: $spec) { jobs { id } } }`;
const JOBS = `{ jobs(first: 10) { edges { node { name } } } }`;

/** A valid job file of one job, padded with a comment to `bytes` bytes. */
function paddedFile(name: string, bytes: number): string {
  const head = `jobs:\n  - name: ${name}\n    steps: [{run: "true"}]\n#`;
  return head + 'x'.repeat(bytes - head.length - 1) + '\n';
}

describe('request bodies over the limits', () => {
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    token = await k.token('big-bodies');
  });
  afterAll(async () => {
    await k?.stop();
  });

  /** Nothing of any refused request was stored. */
  async function expectNoJobs(): Promise<void> {
    const res = await k.gql(JOBS, {}, token);
    expect(res.errors).toBeUndefined();
    expect(res.data!.jobs.edges).toEqual([]);
  }

  it('answers a GraphQL POST over 1 MiB with 413 and a JSON error, before running it', async () => {
    const body = JSON.stringify({ query: SUBMIT, variables: { spec: paddedFile('TooBig', MAX_GRAPHQL_BODY_BYTES + 1024) } });
    const res = await fetch(`${k.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const json = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string; limitBytes: number } }> };
    expect(json.errors[0]!.extensions).toEqual({ code: 'PAYLOAD_TOO_LARGE', limitBytes: MAX_GRAPHQL_BODY_BYTES });
    expect(json.errors[0]!.message).toMatch(/larger than 1048576 bytes \(1 MiB\)/);
    await expectNoJobs();
  });

  it('answers malformed JSON with 400 and a JSON error', async () => {
    const res = await fetch(`${k.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{"query": ' });
    expect(res.status).toBe(400);
    const json = (await res.json()) as { errors: Array<{ extensions: { code: string } }> };
    expect(json.errors[0]!.extensions.code).toBe('BAD_REQUEST');
  });

  it('refuses a job file over 256 KiB inside a GraphQL variable with a diagnostic naming the limit', async () => {
    // Within the 1 MiB body limit, so it is the job file limit that refuses it.
    const res = await k.gql(SUBMIT, { spec: paddedFile('TooLong', MAX_JOB_FILE_BYTES + 1) }, token);
    expect(res.status).toBe(200);
    expect(res.data).toBeNull();
    expect(res.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
    expect(res.errors![0]!.extensions!.diagnostics).toEqual([
      { line: 1, column: 1, path: '', message: `the file is ${MAX_JOB_FILE_BYTES + 1} bytes long; the limit is ${MAX_JOB_FILE_BYTES} bytes (256 KiB)`, severity: 'error' },
    ]);
    await expectNoJobs();
  });

  it('accepts a job file of exactly 256 KiB', async () => {
    const res = await k.gql(SUBMIT, { spec: paddedFile('JustFits', MAX_JOB_FILE_BYTES) }, token);
    expect(res.errors).toBeUndefined();
    await k.gql(`mutation($id: ID!) { deleteJob(id: $id) }`, { id: res.data!.submitJob.jobs[0].id }, token);
  });

  it('answers a REST job file over 256 KiB with 413 and stores nothing', async () => {
    const res = await fetch(`${k.url}/api/v1/submit_job`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/yaml' },
      body: paddedFile('RestTooBig', MAX_JOB_FILE_BYTES + 1),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'BAD_USER_INPUT', error: `the job file is larger than ${MAX_JOB_FILE_BYTES} bytes` });
    await expectNoJobs();
  });

  it('closes a socket that sends a message over 1 MiB with 1009, and only that socket', async () => {
    const bystander = createClient({
      url: `${k.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
    });
    const ask = () =>
      new Promise<unknown>((resolve, reject) => {
        let data: unknown;
        bystander.subscribe({ query: '{ me { id } }' }, { next: (r) => (data = r.data), error: reject, complete: () => resolve(data) });
      });
    try {
      expect(await ask()).toEqual({ me: { id: 'big-bodies' } });
      const ws = await openGraphqlWs(k.url, token);
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
      ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: SUBMIT, variables: { spec: paddedFile('OverSocket', MAX_GRAPHQL_BODY_BYTES + 1024) } } }));
      expect((await closed).code).toBe(MESSAGE_TOO_BIG);

      // The server and the other socket go on.
      expect(await ask()).toEqual({ me: { id: 'big-bodies' } });
      expect((await fetch(`${k.url}/healthz`)).status).toBe(200);
      const fresh = await openGraphqlWs(k.url, token);
      fresh.close();
      await expectNoJobs();
    } finally {
      await bystander.dispose();
    }
  });
});
