import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STALE_LOCK_MS, storedAccessToken, writeCredentials } from '../src/cli/credentials.js';
import { discover, pollForToken, refreshTokens, REQUEST_TIMEOUT_MS, requestDeviceCode, revokeToken } from '../src/cli/oidc.js';
import { runCli } from '../src/cli/runCli.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { actAsUser, startOidcProvider, type TestOidcProvider } from './helpers/oidcProvider.js';

/**
 * `kiln login` against a real OpenID provider (oidc-provider) on 127.0.0.1, and a Kiln that
 * verifies tokens through that provider's JWKS, as it would with Auth0. The CLI is the real
 * binary (dist/: `npm run build` first); the user's browser is played with fetch and cookies.
 */
const KILN_BIN = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));

interface Running {
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Children still running; killed in afterAll so that a failed test leaves no `kiln login` polling. */
const children = new Set<ReturnType<typeof spawn>>();

function kiln(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [KILN_BIN, ...args], { env: { PATH: process.env.PATH ?? '', HOME: dir, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  children.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  void exited.then(() => clearTimeout(timer));
  return { stdout: () => stdout, stderr: () => stderr, exited };
}

async function ran(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = kiln(args, env);
  const code = await r.exited;
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

/** The URL `kiln login` tells the user to open and the code to check, once both are printed. */
async function verificationUrl(r: Running): Promise<string> {
  const [url] = await waitFor(async () => {
    const url = /^\s+(http\S+)$/m.exec(r.stderr())?.[1];
    const code = /code: (\S+)/.exec(r.stderr())?.[1];
    return url && code ? [url, code] : undefined;
  }, 20_000, `kiln login to print the URL and the code; stderr so far:\n${r.stderr()}`);
  return url;
}

let dir: string;
let idp: TestOidcProvider;
let k: TestKiln;
let credentials: string;
let loginArgs: string[];
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-login-'));
  idp = await startOidcProvider();
  k = await startTestKiln({
    worker: false,
    env: { KILN_JWT_SECRET: '', KILN_JWKS_URL: idp.jwksUrl, KILN_JWT_ISSUER: idp.issuer, KILN_JWT_AUDIENCE: idp.audience },
  });
  // A directory that does not exist yet: login creates it, private to the user.
  credentials = path.join(dir, 'config', 'kiln', 'credentials.json');
  env = { KILN_CREDENTIALS_FILE: credentials };
  loginArgs = ['login', '--issuer', idp.issuer, '--client-id', idp.clientId, '--audience', idp.audience, '--server', k.url];
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await k?.stop();
  await idp?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('kiln login', () => {
  it('signs in with the device flow, stores the token for the owner only, and Kiln accepts it as that account', async () => {
    const login = kiln(loginArgs, env);
    const url = await verificationUrl(login);
    const code = /code: (\S+)/.exec(login.stderr())?.[1];
    expect(url).toContain(`user_code=${code}`);
    const page = await actAsUser(url, { approveAs: 'alice-device' });
    expect(page).toMatch(/Sign-in Success/);
    expect(await login.exited, login.stderr()).toBe(0);
    expect(login.stderr()).toMatch(/Logged in as alice-device at http:\/\/127\.0\.0\.1:\d+ \(stored in .*credentials\.json/);

    expect((await stat(credentials)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(credentials))).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(await readFile(credentials, 'utf8'));
    expect(stored).toMatchObject({ issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, audienceParam: 'resource', server: k.url, subject: 'alice-device' });
    expect(stored.refreshToken).toEqual(expect.any(String));
    const claims = JSON.parse(Buffer.from(stored.accessToken.split('.')[1], 'base64url').toString());
    expect(claims).toMatchObject({ iss: idp.issuer, aud: idp.audience, sub: 'alice-device' });

    // No --token, no KILN_TOKEN, not even --server: all from the stored login. Kiln verifies
    // the token with the provider's JWKS, and the owner is the token's subject.
    const me = await ran(['whoami'], env);
    expect(me.code, me.stderr).toBe(0);
    expect(me.stdout).toBe('alice-device\n');
    await writeFile(path.join(dir, 'one.yaml'), 'jobs:\n  - name: Nightly\n    schedule: "0 0 * * *"\n    steps: [{run: "true"}]\n');
    expect((await ran(['submit', path.join(dir, 'one.yaml')], env)).code).toBe(0);
    const jobs = await ran(['jobs'], env);
    expect(jobs.code, jobs.stderr).toBe(0);
    expect(jobs.stdout).toMatch(/^Nightly\s+0 0 \* \* \*/m);
    // An explicit token still wins over the stored one (and the stored server goes with the
    // stored token only).
    const explicit = await ran(['whoami', '--token', 'not-a-jwt', '--server', k.url], env);
    expect(explicit.code).toBe(1);
    expect(explicit.stderr).toMatch(/UNAUTHENTICATED.*check --token or KILN_TOKEN/);
  });

  it('sends the stored token only to the server named at login, and never over plain http to another host', async () => {
    // A project's environment pointing KILN_URL elsewhere: a server on this machine that
    // records what it is sent.
    const seen: Array<string | undefined> = [];
    const decoy = createServer((req, res) => {
      seen.push(req.headers.authorization);
      req.resume().on('end', () => res.writeHead(500, { 'content-type': 'application/json' }).end('{}'));
    });
    await new Promise<void>((resolve) => decoy.listen(0, '127.0.0.1', resolve));
    const decoyUrl = `http://127.0.0.1:${(decoy.address() as AddressInfo).port}`;
    try {
      // Plain http to a host that is not this machine: refused before anything is sent.
      const cleartext = await ran(['jobs'], { ...env, KILN_URL: 'http://ci.internal.invalid:4000' });
      expect(cleartext.code).toBe(2);
      expect(cleartext.stderr).toMatch(/refusing to send the token stored by `kiln login` over plain http to http:\/\/ci\.internal\.invalid:4000 \(from KILN_URL\).*Use an https:\/\/ server URL.*--token/);
      expect(cleartext.stderr).not.toMatch(/ENOTFOUND|EAI_AGAIN/);

      const other = await ran(['whoami'], { ...env, KILN_URL: decoyUrl });
      expect(other.code).toBe(2);
      expect(other.stderr).toContain(`refusing to send the token stored by \`kiln login\` to ${decoyUrl} (from KILN_URL): it is for the server named at \`kiln login\`, ${k.url}`);
      expect(other.stderr).toMatch(/kiln login --server .*--token.*--trust-server/);
      const flag = await ran(['whoami', '--server', decoyUrl], env);
      expect(flag.code).toBe(2);
      expect(flag.stderr).toMatch(/\(from --server\)/);
      expect(seen).toEqual([]);

      // Saying so sends it; an explicit token goes wherever it is told.
      const trusted = await ran(['whoami', '--trust-server'], { ...env, KILN_URL: decoyUrl });
      expect(trusted.code).toBe(1);
      const stored = JSON.parse(await readFile(credentials, 'utf8'));
      expect(seen).toEqual([`Bearer ${stored.accessToken}`]);
      await ran(['whoami', '--token', 'explicit'], { ...env, KILN_URL: decoyUrl });
      expect(seen[1]).toBe('Bearer explicit');

      // The same origin spelled differently is the same server.
      const same = await ran(['whoami'], { ...env, KILN_URL: `${k.url}/graphql` });
      expect(same.code, same.stderr).toBe(0);
      expect(same.stdout).toBe('alice-device\n');
    } finally {
      decoy.closeAllConnections();
      await new Promise((resolve) => decoy.close(resolve));
    }
  });

  it('refreshes an expired stored token with the refresh token, and logout revokes the session', async () => {
    const before = JSON.parse(await readFile(credentials, 'utf8'));
    await writeFile(credentials, JSON.stringify({ ...before, expiresAt: new Date(Date.now() - 1000).toISOString() }), { mode: 0o600 });
    const me = await ran(['whoami'], env);
    expect(me.code, me.stderr).toBe(0);
    expect(me.stdout).toBe('alice-device\n');
    const after = JSON.parse(await readFile(credentials, 'utf8'));
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(Date.parse(after.expiresAt)).toBeGreaterThan(Date.now() + 30 * 60_000);
    expect((await stat(credentials)).mode & 0o777).toBe(0o600);

    const out = await ran(['logout'], env);
    expect(out.code).toBe(0);
    expect(out.stderr).toMatch(/Logged out: removed .*credentials\.json/);
    await expect(stat(credentials)).rejects.toThrow(/ENOENT/);
    // The provider revoked the refresh token: it no longer buys an access token.
    const refused = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: after.refreshToken, client_id: idp.clientId, resource: idp.audience }),
    });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_grant');
    const none = await ran(['whoami', '--server', k.url], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no token: .*kiln login/);
  });

  it('says so and stores nothing when the user denies the sign-in', async () => {
    const login = kiln(loginArgs, env);
    await actAsUser(await verificationUrl(login), { deny: true });
    expect(await login.exited).toBe(1);
    expect(login.stderr()).toMatch(/kiln: the sign-in was denied \(End-User aborted interaction\); nothing was stored/);
    await expect(stat(credentials)).rejects.toThrow(/ENOENT/);
  });

  it('says so when the code expires before anyone approves it', async () => {
    idp.deviceCodeTtl = 2;
    try {
      const started = Date.now();
      const login = kiln(loginArgs, env);
      await verificationUrl(login);
      expect(await login.exited).toBe(1);
      expect(login.stderr()).toMatch(/kiln: the code \S+ expired before the sign-in was approved; run `kiln login` again/);
      // The first poll comes after the default 5 s interval (the provider names none).
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      idp.deviceCodeTtl = 600;
    }
    await expect(stat(credentials)).rejects.toThrow(/ENOENT/);
  });

  it('refuses plain http to a provider that is not on this machine, and a login without a client id', async () => {
    const http = await ran(['login', '--issuer', 'http://idp.example.com/', '--client-id', 'x'], env);
    expect(http.code).toBe(1);
    expect(http.stderr).toMatch(/the issuer URL must use https:\/\/ \(plain http is allowed for loopback hosts only\)/);
    const noClient = await ran(['login', '--issuer', idp.issuer], env);
    expect(noClient.code).toBe(2);
    expect(noClient.stderr).toMatch(/--client-id <id> or KILN_OIDC_CLIENT_ID/);
  });
});

describe('polling the token endpoint', () => {
  it('waits the interval on authorization_pending, 5 s longer for good after slow_down, and backs off when the provider is unreachable', async () => {
    // oidc-provider never answers slow_down, so a scripted token endpoint plays a busy provider;
    // the waits are recorded instead of slept.
    const answers = [
      { status: 400, body: { error: 'authorization_pending' } },
      { status: 400, body: { error: 'slow_down' } },
      { status: 400, body: { error: 'authorization_pending' } },
      { status: 503, body: {} },
      { status: 200, body: { access_token: 'a.b.c', token_type: 'Bearer', expires_in: 60, refresh_token: 'r1' } },
    ];
    const seen: URLSearchParams[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d)).on('end', () => {
        seen.push(new URLSearchParams(body));
        const answer = answers.shift()!;
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const tokenEndpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
      const waits: number[] = [];
      const tokens = await pollForToken(
        { issuer: 'http://127.0.0.1', deviceAuthorizationEndpoint: tokenEndpoint, tokenEndpoint, revocationEndpoint: null },
        { clientId: 'cli', audience: 'https://kiln.test/api', audienceParam: 'resource' },
        { deviceCode: 'dc', userCode: 'ABCD-EFGH', verificationUri: 'http://x/device', verificationUriComplete: null, expiresInSeconds: 600, intervalSeconds: 3 },
        async (ms) => void waits.push(ms),
      );
      expect(waits).toEqual([3000, 3000, 8000, 8000, 16000]);
      expect(tokens).toMatchObject({ accessToken: 'a.b.c', refreshToken: 'r1' });
      expect(Object.fromEntries(seen[0]!)).toEqual({
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
        device_code: 'dc',
        client_id: 'cli',
        resource: 'https://kiln.test/api',
      });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the provider requests', () => {
  it('answer 429 like slow_down, and wait at least what Retry-After asks', async () => {
    const answers: Array<{ status: number; body: object; headers?: Record<string, string> }> = [
      { status: 429, body: {}, headers: { 'retry-after': '20' } },
      { status: 429, body: { error: 'slow_down' } },
      { status: 400, body: { error: 'authorization_pending' } },
      { status: 200, body: { access_token: 'a.b.c', token_type: 'Bearer', expires_in: 60 } },
    ];
    const server = createServer((req, res) => {
      req.resume().on('end', () => {
        const answer = answers.shift()!;
        res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const tokenEndpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
      const waits: number[] = [];
      const tokens = await pollForToken(
        { issuer: 'http://127.0.0.1', deviceAuthorizationEndpoint: tokenEndpoint, tokenEndpoint, revocationEndpoint: null },
        { clientId: 'cli', audience: null, audienceParam: 'resource' },
        { deviceCode: 'dc', userCode: 'ABCD-EFGH', verificationUri: 'http://x/device', verificationUriComplete: null, expiresInSeconds: 600, intervalSeconds: 3 },
        async (ms) => void waits.push(ms),
      );
      // 3 s; 429: interval 8 s, but Retry-After says 20; 429 again: 13 s for good.
      expect(waits).toEqual([3000, 20000, 13000, 13000]);
      expect(tokens.accessToken).toBe('a.b.c');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('never follow a redirect with a device code or a refresh token in the body', async () => {
    // Where the redirects point: it must receive nothing.
    const stolen: string[] = [];
    const sink = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d)).on('end', () => {
        stolen.push(`${req.method} ${req.url} ${body}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'x.y.z', token_type: 'Bearer', expires_in: 60 }));
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
    const redirector = createServer((req, res) => {
      req.resume().on('end', () => {
        if (req.url === '/.well-known/openid-configuration') {
          res.writeHead(302, { location: 'http://idp.example.invalid/.well-known/openid-configuration' }).end();
        } else {
          res.writeHead(req.url === '/revoke' ? 308 : 307, { location: `${sinkUrl}${req.url}` }).end();
        }
      });
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
    try {
      const client = { clientId: 'cli', audience: null, audienceParam: 'resource' as const };
      await expect(refreshTokens(`${base}/token`, client, 'rt-secret')).rejects.toThrow(
        new RegExp(`${base}/token answered HTTP 307 redirecting to ${sinkUrl}/token; kiln does not follow redirects`),
      );
      const endpoints = { issuer: base, deviceAuthorizationEndpoint: `${base}/device`, tokenEndpoint: `${base}/token`, revocationEndpoint: `${base}/revoke` };
      await expect(requestDeviceCode(endpoints, client, 'openid')).rejects.toThrow(/answered HTTP 307/);
      // Not a network error to retry: the poll ends at once.
      const waits: number[] = [];
      await expect(
        pollForToken(
          endpoints,
          client,
          { deviceCode: 'dc-secret', userCode: 'ABCD-EFGH', verificationUri: 'http://x/device', verificationUriComplete: null, expiresInSeconds: 600, intervalSeconds: 1 },
          async (ms) => void waits.push(ms),
        ),
      ).rejects.toThrow(/answered HTTP 307/);
      expect(waits).toEqual([1000]);
      expect(await revokeToken(`${base}/revoke`, 'cli', 'rt-secret', 'refresh_token')).toMatch(/answered HTTP 308/);
      expect(stolen).toEqual([]);
      // Discovery follows redirects, but none off https (here: plain http to another host,
      // refused before it is even looked up).
      await expect(discover(base)).rejects.toThrow(/redirects to http:\/\/idp\.example\.invalid\/\.well-known\/openid-configuration, which must use https:\/\//);
    } finally {
      for (const s of [sink, redirector]) {
        s.closeAllConnections();
        await new Promise((resolve) => s.close(resolve));
      }
    }
  });
});

/**
 * A token endpoint whose refresh answers wait until the test lets them go; it records the
 * refresh tokens spent and revoked.
 */
async function scriptedRefresh() {
  const spent: string[] = [];
  const revoked: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  let open: () => void = () => {};
  let n = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d)).on('end', () => {
      const form = new URLSearchParams(body);
      if (req.url === '/revoke') {
        revoked.push(form.get('token')!);
        res.writeHead(200).end();
        return;
      }
      spent.push(form.get('refresh_token')!);
      const next = `rt-${++n}`;
      void gate.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `at-${n}`, token_type: 'Bearer', expires_in: 3600, refresh_token: next })));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    spent,
    revoked,
    /** Holds the next refresh answers until release() is called. */
    hold() {
      gate = new Promise((resolve) => (open = resolve));
    },
    release() {
      open();
    },
    async stop() {
      open();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

describe('the stored credentials', () => {
  let idpStub: Awaited<ReturnType<typeof scriptedRefresh>>;
  let lockDir: string;
  let file: string;
  let lockFile: string;

  beforeAll(async () => {
    idpStub = await scriptedRefresh();
  });
  afterAll(() => idpStub?.stop());

  async function expiredLogin(): Promise<void> {
    lockDir = await mkdtemp(path.join(dir, 'creds-'));
    file = path.join(lockDir, 'credentials.json');
    lockFile = `${file}.lock`;
    idpStub.spent.length = 0;
    idpStub.revoked.length = 0;
    await writeCredentials(file, {
      version: 1,
      issuer: idpStub.url,
      clientId: 'cli',
      audience: null,
      audienceParam: 'resource',
      scope: 'openid offline_access',
      tokenEndpoint: `${idpStub.url}/token`,
      revocationEndpoint: `${idpStub.url}/revoke`,
      server: null,
      accessToken: 'at-0',
      refreshToken: 'rt-0',
      expiresAt: new Date(Date.now() - 1000).toISOString(),
      subject: 'dora',
      obtainedAt: new Date().toISOString(),
    });
  }

  /** A lock file as another kiln writes it; `ageMs` backdates it. */
  async function foreignLock(pid: number, ageMs = 0): Promise<void> {
    await writeFile(lockFile, JSON.stringify({ pid, host: hostname(), nonce: `other-${pid}`, createdAt: new Date(Date.now() - ageMs).toISOString() }), { mode: 0o600 });
    const then = new Date(Date.now() - ageMs);
    await utimes(lockFile, then, then);
  }

  const settled = (p: Promise<unknown>) => {
    const state = { done: false };
    void p.then(
      () => (state.done = true),
      () => (state.done = true),
    );
    return state;
  };

  it('is not taken from a live refresher, however long its refresh request may take', async () => {
    await expiredLogin();
    // Held for 45 s already by a process that is alive (the test runner): a refresh request
    // may take 30 s and the lock stays until the new tokens are stored.
    await foreignLock(process.ppid, 45_000);
    const refreshing = storedAccessToken(file);
    const state = settled(refreshing);
    await new Promise((r) => setTimeout(r, 1500));
    expect(state.done).toBe(false);
    expect(idpStub.spent).toEqual([]);
    await rm(lockFile);
    expect((await refreshing)?.accessToken).toBe('at-1');
    expect(idpStub.spent).toEqual(['rt-0']);
    await expect(stat(lockFile)).rejects.toThrow(/ENOENT/);
    // Only a lock older than any live refresh can be is taken by age.
    expect(STALE_LOCK_MS).toBeGreaterThanOrEqual(2 * REQUEST_TIMEOUT_MS);
  });

  it('is taken at once from a refresher that died, and refreshed once by parallel commands', async () => {
    await expiredLogin();
    await foreignLock(await deadPid());
    const started = Date.now();
    const all = await Promise.all([storedAccessToken(file), storedAccessToken(file), storedAccessToken(file)]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(all.map((c) => c?.refreshToken)).toEqual([expect.any(String), expect.any(String), expect.any(String)]);
    expect(new Set(all.map((c) => c?.accessToken)).size).toBe(1);
    expect(idpStub.spent).toEqual(['rt-0']);
    // The broken lock was moved aside and removed, nothing left behind.
    expect(await readdir(lockDir)).toEqual(['credentials.json']);
  });

  it('is kept by a logout until a refresh in flight is done, and the refresh does not bring it back', async () => {
    await expiredLogin();
    idpStub.hold();
    const refreshing = storedAccessToken(file);
    await waitFor(async () => (idpStub.spent.length > 0 ? true : undefined), 10_000, 'the refresh request');
    const err = { text: '' };
    const loggingOut = runCli('logout', [], { stdout: { write: () => true }, stderr: { write: (s: string) => (err.text += s) }, env: { KILN_CREDENTIALS_FILE: file } });
    const state = settled(loggingOut);
    await new Promise((r) => setTimeout(r, 1000));
    expect(state.done).toBe(false);
    expect(idpStub.revoked).toEqual([]);
    idpStub.release();
    const renewed = await refreshing;
    expect(await loggingOut).toBe(0);
    expect(err.text).toMatch(/Logged out: removed/);
    // The refresh token revoked is the one the refresh brought, not the spent one.
    expect(renewed?.refreshToken).not.toBe('rt-0');
    expect(idpStub.revoked).toEqual([renewed!.refreshToken]);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
    expect(await readdir(lockDir)).toEqual([]);
  });

  it('are not written back by a refresh when they changed or went away meanwhile', async () => {
    // Removed meanwhile (a logout that could not get the lock): the refresh fails, stores
    // nothing and revokes what it was given.
    await expiredLogin();
    idpStub.hold();
    let refreshing = storedAccessToken(file);
    await waitFor(async () => (idpStub.spent.length > 0 ? true : undefined), 10_000, 'the refresh request');
    await rm(file);
    idpStub.release();
    await expect(refreshing).rejects.toThrow(/the stored credentials were removed \(`kiln logout`\) while refreshing/);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
    expect(idpStub.revoked).toHaveLength(1);
    expect(idpStub.revoked[0]).toMatch(/^rt-\d+$/);

    // Replaced meanwhile (a new login): the new login stays, and is what the command uses.
    await expiredLogin();
    idpStub.hold();
    refreshing = storedAccessToken(file);
    await waitFor(async () => (idpStub.spent.length > 0 ? true : undefined), 10_000, 'the refresh request');
    const newer = { ...JSON.parse(await readFile(file, 'utf8')), accessToken: 'new-login', refreshToken: 'rt-new', expiresAt: new Date(Date.now() + 3600_000).toISOString() };
    await writeFile(`${file}.new`, JSON.stringify(newer));
    await rename(`${file}.new`, file);
    idpStub.release();
    expect((await refreshing)?.accessToken).toBe('new-login');
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ accessToken: 'new-login', refreshToken: 'rt-new' });
  });

  it('leave no temporary file with the tokens behind when the write fails', async () => {
    await expiredLogin();
    const before = JSON.parse(await readFile(file, 'utf8'));
    // A directory where the file should go: the final rename fails.
    const blocked = path.join(lockDir, 'blocked.json');
    await mkdir(blocked);
    await expect(writeCredentials(blocked, before)).rejects.toThrow(/EISDIR|EEXIST|ENOTEMPTY|EPERM/);
    expect((await readdir(lockDir)).sort()).toEqual(['blocked.json', 'credentials.json']);
  });
});
