import { parseSetCookie } from 'cookie';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { httpSession, type HttpSession } from './helpers/webSession.js';

let k: TestKiln;
let db: pg.Pool;
let alice: HttpSession;
let aliceJob: string;
let bobJob: string;

const JOB = (name: string) => `jobs:\n  - name: ${name}\n    schedule: "0 0 1 1 *"\n    steps: [{run: "true"}]\n`;
const JOBS_QUERY = '{ jobs(first: 50) { edges { node { id name } } } }';

/** A GraphQL request over HTTP with whatever headers the test gives. */
async function gql(body: { query: string; variables?: Record<string, unknown> }, headers: Record<string, string>) {
  const res = await fetch(`${k.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> } };
}

const pause = (id: string) => ({ query: 'mutation($id: ID!) { pauseJob(id: $id) { id paused } }', variables: { id } });

/** Opens graphql-ws with the given upgrade headers and no token; resolves with the first message type or the close code. */
async function socketOutcome(headers: Record<string, string>): Promise<{ ack: boolean; code?: number; ws: WebSocket }> {
  const ws = new WebSocket(`${k.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', { headers });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve({ ack: JSON.parse(String(data)).type === 'connection_ack', ws }));
    ws.once('close', (code) => resolve({ ack: false, code, ws }));
  });
}

beforeAll(async () => {
  k = await startTestKiln({ worker: false });
  db = new pg.Pool({ connectionString: k.databaseUrl, max: 2 });
  const submit = async (user: string, name: string) =>
    (await k.gql('mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }', { s: JOB(name) }, await k.token(user))).data!.submitJob.jobs[0].id as string;
  aliceJob = await submit('alice', 'Alices');
  bobJob = await submit('bob', 'Bobs');
  alice = await httpSession(k, 'alice');
});
afterAll(async () => {
  await db?.end();
  await k?.stop();
});

describe('POST /api/v1/session and GET /api/v1/session', () => {
  it('turns a bearer token into an httpOnly Lax session cookie and a Strict page-readable CSRF cookie', () => {
    const cookies = Object.fromEntries(alice.setCookie.map((line) => [parseSetCookie(line).name, { line, ...parseSetCookie(line) }]));
    expect(cookies.kiln_session).toMatchObject({ httpOnly: true, sameSite: 'lax', path: '/' });
    expect(cookies.kiln_csrf).toMatchObject({ sameSite: 'strict', path: '/' });
    expect(cookies.kiln_csrf!.httpOnly).toBeFalsy();
    // Plain http on loopback: no Secure, or the browser would drop the cookie.
    expect(cookies.kiln_session!.secure).toBeFalsy();
    expect(cookies.kiln_session!.maxAge).toBeGreaterThan(3600);
    expect(alice.id).not.toBe(alice.csrf);
  });

  it('stores only a hash of the session id', async () => {
    const { rows } = await db.query(`select encode(id_hash, 'hex') as h, csrf_token from web_sessions where owner = 'alice'`);
    expect(rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(rows)).not.toContain(alice.id);
  });

  it('answers who the session is, and 401 without one', async () => {
    const me = await fetch(`${k.url}/api/v1/session`, { headers: { cookie: alice.cookie } });
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ user: { id: 'alice', name: 'alice' } });
    expect((await fetch(`${k.url}/api/v1/session`)).status).toBe(401);
    const forged = await fetch(`${k.url}/api/v1/session`, { headers: { cookie: `kiln_session=${'A'.repeat(43)}` } });
    expect(forged.status).toBe(401);
  });

  it('refuses to make a session without a valid bearer token', async () => {
    expect((await fetch(`${k.url}/api/v1/session`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${k.url}/api/v1/session`, { method: 'POST', headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    // A session cannot mint another session: only a token can.
    expect((await fetch(`${k.url}/api/v1/session`, { method: 'POST', headers: { cookie: alice.cookie, 'x-csrf-token': alice.csrf } })).status).toBe(401);
  });
});

describe('the CSRF rule', () => {
  it('runs a session mutation that carries the CSRF token', async () => {
    const ok = await gql(pause(aliceJob), { cookie: alice.cookie, 'x-csrf-token': alice.csrf, origin: k.url });
    expect(ok.status).toBe(200);
    expect(ok.body.data?.pauseJob).toEqual({ id: aliceJob, paused: true });
  });

  it('refuses a session mutation without the CSRF token, or with a wrong one, with 403 and changes nothing', async () => {
    await gql({ query: 'mutation($id: ID!) { resumeJob(id: $id) { id } }', variables: { id: aliceJob } }, { cookie: alice.cookie, 'x-csrf-token': alice.csrf });
    const attempts: Array<Record<string, string>> = [{ cookie: alice.cookie }, { cookie: alice.cookie, 'x-csrf-token': 'wrong' }, { cookie: alice.cookie, 'x-csrf-token': `${alice.csrf}x` }];
    for (const headers of attempts) {
      const refused = await gql(pause(aliceJob), headers);
      expect(refused.status).toBe(403);
      expect(refused.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
    const job = await k.gql('query($id: ID!) { job(id: $id) { paused } }', { id: aliceJob }, await k.token('alice'));
    expect(job.data!.job.paused).toBe(false);
  });

  it('refuses a forged cross-site mutation even when it carries the token', async () => {
    const forged = await gql(pause(aliceJob), { cookie: alice.cookie, 'x-csrf-token': alice.csrf, origin: 'https://evil.example' });
    expect(forged.status).toBe(403);
    // As a browser sends a cross-site form post: a simple content type, no custom header.
    const form = await fetch(`${k.url}/graphql`, {
      method: 'POST',
      headers: { cookie: alice.cookie, 'content-type': 'text/plain', origin: 'https://evil.example' },
      body: JSON.stringify(pause(aliceJob)),
    });
    expect(form.status).toBeGreaterThanOrEqual(400);
    const job = await k.gql('query($id: ID!) { job(id: $id) { paused } }', { id: aliceJob }, await k.token('alice'));
    expect(job.data!.job.paused).toBe(false);
  });

  it('refuses a session mutation sent over GET', async () => {
    const url = `${k.url}/graphql?query=${encodeURIComponent(`mutation { pauseJob(id: "${aliceJob}") { id } }`)}`;
    const res = await fetch(url, { headers: { cookie: alice.cookie, 'apollo-require-preflight': 'true' } });
    expect(res.status).toBe(403);
  });

  it('applies to REST writes: a submit without the token is 403, with it 201', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${k.url}/api/v1/submit_job`, { method: 'POST', headers: { 'content-type': 'application/yaml', cookie: alice.cookie, ...headers }, body: JOB('Rest') });
    const refused = await post({});
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ code: 'FORBIDDEN' });
    expect((await post({ 'x-csrf-token': alice.csrf })).status).toBe(201);
  });

  it('needs no CSRF token from a bearer token', async () => {
    const res = await gql(pause(aliceJob), { authorization: `Bearer ${await k.token('alice')}` });
    expect(res.body.data?.pauseJob.paused).toBe(true);
    await gql({ query: 'mutation($id: ID!) { resumeJob(id: $id) { id } }', variables: { id: aliceJob } }, { authorization: `Bearer ${await k.token('alice')}` });
  });
});

describe('owners', () => {
  it("a session of one user never reads the other's jobs", async () => {
    const list = await gql({ query: JOBS_QUERY }, { cookie: alice.cookie, 'x-csrf-token': alice.csrf });
    const names = list.body.data!.jobs.edges.map((e: { node: { name: string } }) => e.node.name);
    expect(names).toContain('Alices');
    expect(names).not.toContain('Bobs');
    const bobs = await gql({ query: 'query($id: ID!) { job(id: $id) { id } }', variables: { id: bobJob } }, { cookie: alice.cookie, 'x-csrf-token': alice.csrf });
    expect(bobs.body.data?.job ?? null).toBeNull();
    expect((await fetch(`${k.url}/api/v1/job_status/${bobJob}`, { headers: { cookie: alice.cookie } })).status).toBe(404);
    expect((await fetch(`${k.url}/api/v1/job_status/${aliceJob}`, { headers: { cookie: alice.cookie } })).status).toBe(200);
  });

  it('lets a bearer token take precedence over the cookie, and never falls back from a bad one', async () => {
    const asBob = await fetch(`${k.url}/api/v1/job_status/${bobJob}`, { headers: { cookie: alice.cookie, authorization: `Bearer ${await k.token('bob')}` } });
    expect(asBob.status).toBe(200);
    const bad = await fetch(`${k.url}/api/v1/job_status/${aliceJob}`, { headers: { cookie: alice.cookie, authorization: 'Bearer not-a-token' } });
    expect(bad.status).toBe(401);
  });
});

describe('the graphql-ws upgrade on the session cookie', () => {
  it("is accepted from Kiln's own Origin and reads only the owner's jobs", async () => {
    const { ack, ws } = await socketOutcome({ cookie: alice.cookie, origin: k.url });
    expect(ack).toBe(true);
    ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: JOBS_QUERY } }));
    const next = await new Promise<any>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))));
    const names = next.payload.data.jobs.edges.map((e: { node: { name: string } }) => e.node.name);
    expect(names).toContain('Alices');
    expect(names).not.toContain('Bobs');
    ws.close();
  });

  it('is refused with 4403 from a foreign Origin or without one', async () => {
    const attempts: Array<Record<string, string>> = [{ cookie: alice.cookie, origin: 'https://evil.example' }, { cookie: alice.cookie }, { origin: k.url }];
    for (const headers of attempts) {
      const outcome = await socketOutcome(headers);
      expect(outcome).toMatchObject({ ack: false, code: 4403 });
    }
  });
});

describe('ending sessions', () => {
  it('refuses a session past its absolute end', async () => {
    const s = await httpSession(k, 'alice');
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: s.cookie } })).status).toBe(200);
    await db.query(`update web_sessions set expires_at = now() - interval '1 second' where csrf_token = $1`, [s.csrf]);
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: s.cookie } })).status).toBe(401);
  });

  it('refuses a session idle past the idle timeout', async () => {
    const s = await httpSession(k, 'alice');
    // The default idle timeout is 8 hours.
    await db.query(`update web_sessions set last_seen_at = now() - interval '7 hours 59 minutes' where csrf_token = $1`, [s.csrf]);
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: s.cookie } })).status).toBe(200);
    await db.query(`update web_sessions set last_seen_at = now() - interval '8 hours 1 minute' where csrf_token = $1`, [s.csrf]);
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: s.cookie } })).status).toBe(401);
  });

  it('keeps a used session alive by marking it seen', async () => {
    const s = await httpSession(k, 'alice');
    await db.query(`update web_sessions set last_seen_at = now() - interval '7 hours' where csrf_token = $1`, [s.csrf]);
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: s.cookie } })).status).toBe(200);
    const { rows } = await db.query(`select extract(epoch from now() - last_seen_at) as age from web_sessions where csrf_token = $1`, [s.csrf]);
    expect(Number(rows[0].age)).toBeLessThan(60);
  });

  it('logs out only with the CSRF token, then refuses the session everywhere and closes its sockets', async () => {
    const s = await httpSession(k, 'alice');
    const logout = (headers: Record<string, string>) => fetch(`${k.url}/api/v1/logout`, { method: 'POST', headers: { cookie: s.cookie, ...headers } });
    expect((await logout({})).status).toBe(403);
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: s.cookie } })).status).toBe(200);

    const { ack, ws } = await socketOutcome({ cookie: s.cookie, origin: k.url });
    expect(ack).toBe(true);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

    const out = await logout({ 'x-csrf-token': s.csrf });
    expect(out.status).toBe(204);
    const cleared = out.headers.getSetCookie().map((line) => parseSetCookie(line));
    expect(cleared.map((c) => [c.name, c.maxAge])).toEqual([
      ['kiln_session', 0],
      ['kiln_csrf', 0],
    ]);
    expect(await closed).toBe(4403);
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: s.cookie } })).status).toBe(401);
    expect((await gql({ query: JOBS_QUERY }, { cookie: s.cookie, 'x-csrf-token': s.csrf })).status).toBe(401);
    expect((await socketOutcome({ cookie: s.cookie, origin: k.url })).code).toBe(4403);
    // The other session of the same user is untouched.
    expect((await fetch(`${k.url}/api/v1/session`, { headers: { cookie: alice.cookie } })).status).toBe(200);
  });
});
