import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startJwksServer, type JwksServer } from './helpers/jwks.js';
import { SignJWT } from 'jose';
import { startTestKiln, TEST_SECRET, type TestKiln } from './helpers/kiln.js';

const ONE_OFF = 'jobs:\n  - name: Private\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n';

describe('owner scoping and tokens over GraphQL and REST (local mode)', () => {
  let k: TestKiln;
  let alice: string;
  let bob: string;
  let jobId: string;
  let executionId: string;

  beforeAll(async () => {
    k = await startTestKiln({ worker: false });
    alice = await k.token('alice');
    bob = await k.token('bob');
    const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: ONE_OFF }, alice);
    jobId = res.data!.submitJob.jobs[0].id;
    const t = await k.gql(`mutation($id: ID!) { triggerJob(id: $id) { id } }`, { id: jobId }, alice);
    executionId = t.data!.triggerJob.id;
  });
  afterAll(() => k?.stop());

  it('answers 401 UNAUTHENTICATED without a token', async () => {
    const res = await k.gql(`{ me { id } }`, {}, null);
    expect(res.status).toBe(401);
    expect(res.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
    const rest = await fetch(`${k.url}/api/v1/job_status/${jobId}`);
    expect(rest.status).toBe(401);
    expect(((await rest.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
  });

  it('knows who is calling', async () => {
    expect((await k.gql(`{ me { id } }`, {}, alice)).data!.me.id).toBe('alice');
  });

  it("answers null for another owner's job and execution, exactly as for unknown ids", async () => {
    const res = await k.gql(`query($j: ID!, $e: ID!) { job(id: $j) { id } execution(id: $e) { id } }`, { j: jobId, e: executionId }, bob);
    expect(res.data).toEqual({ job: null, execution: null });
    const unknown = await k.gql(`{ job(id: "00000000-0000-4000-8000-000000000000") { id } execution(id: "nope") { id } }`, {}, bob);
    expect(unknown.data).toEqual({ job: null, execution: null });
    const lists = await k.gql(`query($j: ID!) { jobs { edges { node { id } } } executions(jobId: $j) { edges { node { id } } } }`, { j: jobId }, bob);
    expect(lists.data).toEqual({ jobs: { edges: [] }, executions: { edges: [] } });
  });

  it("refuses mutations on another owner's job with NOT_FOUND", async () => {
    for (const m of ['triggerJob(id: $id) { id }', 'pauseJob(id: $id) { id }', 'resumeJob(id: $id) { id }', 'deleteJob(id: $id)']) {
      const res = await k.gql(`mutation($id: ID!) { ${m} }`, { id: jobId }, bob);
      expect(res.errors![0]!.extensions!.code, m).toBe('NOT_FOUND');
    }
    const cancel = await k.gql(`mutation($id: ID!) { cancelExecution(id: $id) { id } }`, { id: executionId }, bob);
    expect(cancel.errors![0]!.extensions!.code).toBe('NOT_FOUND');
    // Alice's job is untouched.
    const mine = await k.gql(`query($id: ID!) { job(id: $id) { paused executions { edges { node { id status } } } } }`, { id: jobId }, alice);
    expect(mine.data!.job).toMatchObject({ paused: false, executions: { edges: [{ node: { id: executionId, status: 'QUEUED' } }] } });
  });

  it("answers 404 on every REST route for another owner's job", async () => {
    for (const route of ['job_status', 'retrieve_history_execution', 'last_execution_logs']) {
      const res = await fetch(`${k.url}/api/v1/${route}/${jobId}`, { headers: { authorization: `Bearer ${bob}` } });
      expect(res.status, route).toBe(404);
    }
    const ok = await fetch(`${k.url}/api/v1/job_status/${jobId}`, { headers: { authorization: `Bearer ${alice}` } });
    expect(ok.status).toBe(200);
  });

  it('rejects an expired local token', async () => {
    const expired = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('kiln-local')
      .setAudience('kiln')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(TEST_SECRET));
    const res = await k.gql(`{ me { id } }`, {}, expired);
    expect(res.status).toBe(401);
    expect(res.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
  });
});

describe('tokens from an identity provider (JWKS mode)', () => {
  let k: TestKiln;
  let idp: JwksServer;

  beforeAll(async () => {
    idp = await startJwksServer('kiln-api');
    k = await startTestKiln({
      worker: false,
      env: { KILN_JWT_SECRET: '', KILN_JWKS_URL: idp.url, KILN_JWT_ISSUER: idp.issuer, KILN_JWT_AUDIENCE: idp.audience },
    });
  });
  afterAll(async () => {
    await k?.stop();
    await idp?.stop();
  });

  async function status(token: string): Promise<[number, string | undefined]> {
    const res = await k.gql(`{ me { id } }`, {}, token);
    return [res.status, res.errors?.[0]?.extensions?.code ?? res.data?.me?.id];
  }

  it('accepts a valid RS256 token from the JWKS served on 127.0.0.1', async () => {
    expect(await status(await idp.sign({ sub: 'carol' }))).toEqual([200, 'carol']);
    const rest = await fetch(`${k.url}/api/v1/job_status/00000000-0000-4000-8000-000000000000`, { headers: { authorization: `Bearer ${await idp.sign({ sub: 'carol' })}` } });
    expect(rest.status).toBe(404);
  });

  it('rejects alg none, a wrong audience or issuer, no or an expired exp, and HS256 where RS256 is required', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'carol', iss: idp.issuer, aud: idp.audience, exp: now + 300 })}.`;
    const cases: Record<string, string> = {
      none: unsigned,
      audience: await idp.sign({ sub: 'carol', aud: 'someone-else' }),
      issuer: await idp.sign({ sub: 'carol', iss: 'http://127.0.0.1:1/other' }),
      noExp: await idp.sign({ sub: 'carol' }, { noExp: true }),
      expired: await idp.sign({ sub: 'carol' }, { expiresIn: '-1h' }),
      hs256: await idp.sign({ sub: 'carol' }, { alg: 'HS256', key: new TextEncoder().encode(idp.publicKeyPem) }),
      noSub: await idp.sign({ sub: undefined }),
    };
    for (const [name, token] of Object.entries(cases)) {
      expect(await status(token), name).toEqual([401, 'UNAUTHENTICATED']);
      const rest = await fetch(`${k.url}/api/v1/job_status/00000000-0000-4000-8000-000000000000`, { headers: { authorization: `Bearer ${token}` } });
      expect(rest.status, `REST ${name}`).toBe(401);
    }
  });
});
