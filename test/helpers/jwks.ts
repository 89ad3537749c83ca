import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';

/** Options of JwksServer.sign; by default an RS256 token signed with the served key. */
export interface SignOptions {
  /** Header `alg`; default RS256. Anything but RS256 needs `key`. */
  alg?: string;
  /** Header `kid`; default the served key's. */
  kid?: string;
  /** Leave `exp` out. */
  noExp?: boolean;
  /** `exp` as jose's setExpirationTime reads it: a span (`'5m'`, `'-1h'`) or epoch seconds. Default `'5m'`. */
  expiresIn?: string | number;
  /** Signing key other than the served private key, e.g. an HMAC secret. */
  key?: CryptoKey | Uint8Array;
}

/** A stand-in identity provider: publishes one RS256 public key and signs tokens with it. */
export interface JwksServer {
  /** URL of the JWKS document. */
  url: string;
  issuer: string;
  audience: string;
  kid: string;
  /** The public key in PEM (SPKI), for algorithm-confusion tests. */
  publicKeyPem: string;
  /** Signs `{ iss, aud, iat, exp, ...claims }`; a claim set to undefined is left out. */
  sign(claims: JWTPayload, opts?: SignOptions): Promise<string>;
  /** How many times the JWKS was fetched. */
  readonly fetches: number;
  stop(): Promise<void>;
}

/** Starts a JWKS server on 127.0.0.1, on a free port. */
export async function startJwksServer(audience = 'kiln-api'): Promise<JwksServer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = 'test-key-1';
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] });
  const publicKeyPem = await exportSPKI(publicKey);

  let fetches = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = `${base}/`;

  return {
    url: `${base}/.well-known/jwks.json`,
    issuer,
    audience,
    kid,
    publicKeyPem,
    get fetches() {
      return fetches;
    },
    async sign(claims, opts = {}) {
      const payload: JWTPayload = { iss: issuer, aud: audience, ...claims };
      for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
      const jwt = new SignJWT(payload)
        .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: opts.kid ?? kid, typ: 'JWT' })
        .setIssuedAt();
      if (!opts.noExp && claims.exp === undefined) jwt.setExpirationTime(opts.expiresIn ?? '5m');
      return jwt.sign(opts.key ?? privateKey);
    },
    stop() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
