import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollForToken } from '../src/cli/oidc.js';
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
