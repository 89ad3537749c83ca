import { base64url, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerToken, mintLocalToken } from '../src/auth/token.js';
import type { AuthConfig, TokenVerifier } from '../src/auth/types.js';
import { createVerifier } from '../src/auth/verifier.js';
import { ConfigError, UnauthenticatedError } from '../src/errors.js';
import { startJwksServer, type JwksServer } from './helpers/jwks.js';

const now = () => Math.floor(Date.now() / 1000);

/** Resolves with the UnauthenticatedError `verify` throws; fails the test if it accepts. */
async function rejection(verifier: TokenVerifier, token: string): Promise<UnauthenticatedError> {
  const err = await verifier.verify(token).then(
    (p) => new Error(`accepted a token it should refuse (sub ${p.sub})`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnauthenticatedError);
  const message = (err as Error).message;
  expect(message).not.toMatch(/\n|\s+at\s/);
  expect(message.length).toBeLessThan(100);
  return err as UnauthenticatedError;
}

/** An unsigned token as an attacker writes it by hand: `alg: none`, empty signature. */
function unsignedToken(claims: Record<string, unknown>): string {
  const part = (obj: unknown) => base64url.encode(JSON.stringify(obj));
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

describe('JWKS mode', () => {
  let idp: JwksServer;
  let cfg: Extract<AuthConfig, { mode: 'jwks' }>;
  let verifier: TokenVerifier;

  beforeAll(async () => {
    idp = await startJwksServer();
    cfg = { mode: 'jwks', jwksUrl: idp.url, issuer: idp.issuer, audience: idp.audience, algorithms: ['RS256'] };
    verifier = createVerifier(cfg);
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('accepts a valid RS256 token and returns its subject and expiry', async () => {
    const token = await idp.sign({ sub: 'auth0|alice' }, { expiresIn: '10m' });
    const principal = await verifier.verify(token);
    expect(principal.sub).toBe('auth0|alice');
    expect(principal.exp).toBeGreaterThan(now() + 500);
  });

  it('fetches the key set once and reuses it', async () => {
    const fresh = createVerifier(cfg);
    const before = idp.fetches;
    for (const sub of ['a', 'b', 'c']) await fresh.verify(await idp.sign({ sub }));
    expect(idp.fetches - before).toBe(1);
  });

  it('rejects an unsigned token with alg none', async () => {
    const token = unsignedToken({ sub: 'mallory', iss: idp.issuer, aud: idp.audience, exp: now() + 600 });
    expect((await rejection(verifier, token)).message).toMatch(/algorithm "none" not allowed/);
  });

  it('rejects a token for another audience', async () => {
    const token = await idp.sign({ sub: 'alice', aud: 'some-other-api' });
    expect((await rejection(verifier, token)).message).toBe('unexpected "aud" claim value');
  });

  it('rejects a token from another issuer', async () => {
    const token = await idp.sign({ sub: 'alice', iss: 'https://evil.example/' });
    expect((await rejection(verifier, token)).message).toBe('unexpected "iss" claim value');
  });

  it('rejects a token without exp', async () => {
    const token = await idp.sign({ sub: 'alice' }, { noExp: true });
    expect((await rejection(verifier, token)).message).toMatch(/"exp"/);
  });

  it('rejects an expired token', async () => {
    const token = await idp.sign({ sub: 'alice', exp: now() - 60 });
    expect((await rejection(verifier, token)).message).toBe('token expired');
  });

  it('rejects an HS256 token when RS256 is required', async () => {
    const token = await idp.sign({ sub: 'alice' }, { alg: 'HS256', key: new TextEncoder().encode('x'.repeat(32)) });
    expect((await rejection(verifier, token)).message).toMatch(/algorithm "HS256" not allowed/);
  });

  it('rejects HS256 signed with the public key bytes, even when HS256 and none are misconfigured in', async () => {
    const token = await idp.sign({ sub: 'mallory' }, { alg: 'HS256', key: new TextEncoder().encode(idp.publicKeyPem) });
    const careless = createVerifier({ ...cfg, algorithms: ['RS256', 'HS256', 'none'] });
    for (const v of [verifier, careless]) {
      expect((await rejection(v, token)).message).toMatch(/algorithm "HS256" not allowed/);
    }
    const unsigned = unsignedToken({ sub: 'mallory', iss: idp.issuer, aud: idp.audience, exp: now() + 600 });
    await rejection(careless, unsigned);
  });

  it('refuses a configuration that allows only none and HS* algorithms', () => {
    expect(() => createVerifier({ ...cfg, algorithms: ['none', 'HS256', 'hs512'] })).toThrow(ConfigError);
  });

  it('rejects a token without sub, or with an empty one', async () => {
    expect((await rejection(verifier, await idp.sign({}))).message).toMatch(/"sub"/);
    expect((await rejection(verifier, await idp.sign({ sub: '' }))).message).toMatch(/"sub"/);
  });

  it('rejects garbage', async () => {
    for (const token of ['garbage', 'a.b.c', '...', 'x'.repeat(20_000)]) {
      expect((await rejection(verifier, token)).message).toBe('malformed token');
    }
    // A well-formed RS256 header over a non-JSON payload: the signature is checked first.
    await rejection(verifier, 'eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln');
    expect((await rejection(verifier, '')).message).toBe('missing token');
  });

  it('rejects a token signed by another key under the served kid', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const token = await idp.sign({ sub: 'mallory' }, { key: privateKey });
    expect((await rejection(verifier, token)).message).toBe('signature verification failed');
  });

  it('rejects a token whose kid the issuer does not publish', async () => {
    const token = await idp.sign({ sub: 'alice' }, { kid: 'unknown-key' });
    expect((await rejection(verifier, token)).message).toBe('no matching signing key');
  });

  it('rejects tokens, with a reason, when the key set cannot be fetched', async () => {
    const gone = await startJwksServer();
    const token = await gone.sign({ sub: 'alice' });
    await gone.stop();
    const v = createVerifier({ ...cfg, jwksUrl: gone.url, issuer: gone.issuer, audience: gone.audience });
    expect((await rejection(v, token)).message).toBe('signing keys unavailable');
  });
});

describe('local mode', () => {
  const cfg: Extract<AuthConfig, { mode: 'local' }> = {
    mode: 'local',
    secret: new TextEncoder().encode('a-local-secret-of-at-least-32-bytes!'),
    issuer: 'kiln-local',
    audience: 'kiln',
  };
  const verifier = createVerifier(cfg);

  function hs256(claims: Record<string, unknown>, secret = cfg.secret): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(secret);
  }

  it('accepts a minted token', async () => {
    const token = await mintLocalToken(cfg, 'bob', 3600);
    const principal = await verifier.verify(token);
    expect(principal.sub).toBe('bob');
    expect(Math.abs(principal.exp - (now() + 3600))).toBeLessThanOrEqual(2);
  });

  it('mints tokens valid for a day by default', async () => {
    const { exp } = await verifier.verify(await mintLocalToken(cfg, 'bob'));
    expect(Math.abs(exp - (now() + 86_400))).toBeLessThanOrEqual(2);
  });

  it('rejects a token signed with another secret', async () => {
    const token = await mintLocalToken({ ...cfg, secret: new TextEncoder().encode('another-secret-that-is-32-bytes-long') }, 'bob');
    expect((await rejection(verifier, token)).message).toBe('signature verification failed');
  });

  it('rejects an expired token', async () => {
    const token = await hs256({ sub: 'bob', iss: cfg.issuer, aud: cfg.audience, exp: now() - 5 });
    expect((await rejection(verifier, token)).message).toBe('token expired');
  });

  it('rejects a token without sub or without exp', async () => {
    const noSub = await hs256({ iss: cfg.issuer, aud: cfg.audience, exp: now() + 60 });
    expect((await rejection(verifier, noSub)).message).toMatch(/"sub"/);
    const noExp = await hs256({ sub: 'bob', iss: cfg.issuer, aud: cfg.audience });
    expect((await rejection(verifier, noExp)).message).toMatch(/"exp"/);
  });

  it('rejects a token for another audience or issuer', async () => {
    const wrongAud = await mintLocalToken({ ...cfg, audience: 'elsewhere' }, 'bob');
    expect((await rejection(verifier, wrongAud)).message).toBe('unexpected "aud" claim value');
    const wrongIss = await mintLocalToken({ ...cfg, issuer: 'elsewhere' }, 'bob');
    expect((await rejection(verifier, wrongIss)).message).toBe('unexpected "iss" claim value');
  });

  it('rejects alg none and RS256 tokens', async () => {
    await rejection(verifier, unsignedToken({ sub: 'bob', iss: cfg.issuer, aud: cfg.audience, exp: now() + 60 }));
    const { privateKey } = await generateKeyPair('RS256');
    const rs = await new SignJWT({ sub: 'bob', iss: cfg.issuer, aud: cfg.audience, exp: now() + 60 })
      .setProtectedHeader({ alg: 'RS256' })
      .sign(privateKey);
    expect((await rejection(verifier, rs)).message).toMatch(/algorithm "RS256" not allowed/);
  });

  it('refuses a secret shorter than 32 bytes', () => {
    expect(() => createVerifier({ ...cfg, secret: new TextEncoder().encode('short') })).toThrow(ConfigError);
  });

  it('refuses to mint for an empty subject or a non-positive lifetime', async () => {
    await expect(mintLocalToken(cfg, '')).rejects.toThrow(/subject/);
    await expect(mintLocalToken(cfg, 'bob', 0)).rejects.toThrow(/lifetime/);
  });
});

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc.def.ghi', 'abc.def.ghi'],
    ['BEARER abc.def.ghi', 'abc.def.ghi'],
    ['  Bearer \t abc.def.ghi  ', 'abc.def.ghi'],
  ])('reads the token from %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it.each([undefined, '', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearerabc', 'Bearer a b', 'Token abc'])(
    'finds no token in %j',
    (header) => {
      expect(bearerToken(header)).toBeNull();
    },
  );
});
