import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

describe('configuration from the environment', () => {
  it('has working defaults with nothing set', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ databaseUrl: null, host: '127.0.0.1', port: 4000, auth: null, s3: null, workerConcurrency: 4, workerPort: null, executor: 'docker' });
    expect(c.dataDir).toMatch(/\.kiln$/);
  });

  it('reads the web session settings, and never lets the idle timeout outlast the session', () => {
    expect(loadConfig({}).web).toEqual({ publicUrl: null, sessionIdleMs: 8 * 3_600_000, sessionMaxAgeMs: 7 * 86_400_000, signInLinkMs: 15 * 60_000, oidc: null, localUser: expect.any(String) });
    const c = loadConfig({ KILN_PUBLIC_URL: 'https://kiln.example.com/app/', KILN_SESSION_IDLE: '30d', KILN_SESSION_MAX_AGE: '1d', KILN_OIDC_CLIENT_ID: 'kiln-web' });
    expect(c.web).toMatchObject({ publicUrl: 'https://kiln.example.com', sessionIdleMs: 86_400_000, sessionMaxAgeMs: 86_400_000, oidc: { clientId: 'kiln-web', clientSecret: null } });
  });

  it('caps the secrets a job may list at 100 unless told otherwise', () => {
    expect(loadConfig({}).maxSecretsPerJob).toBe(100);
    expect(loadConfig({ KILN_MAX_SECRETS_PER_JOB: '1000' }).maxSecretsPerJob).toBe(1000);
  });

  it.each([
    [{ PORT: 'eighty' }, /^PORT: must be an integer/],
    [{ PORT: '70000' }, /^PORT: must be between/],
    [{ DATABASE_URL: 'mysql://x' }, /^DATABASE_URL: must use postgres:/],
    [{ KILN_JWT_SECRET: 'short' }, /^KILN_JWT_SECRET: must be at least 32 bytes/],
    [{ KILN_JWKS_URL: 'https://idp.example/jwks' }, /^KILN_JWT_ISSUER: is required/],
    [{ KILN_JWKS_URL: 'not a url' }, /^KILN_JWKS_URL: is not a valid URL/],
    [{ S3_ENDPOINT: 'http://127.0.0.1:9000' }, /^S3_BUCKET: is required/],
    [{ S3_BUCKET: 'Bad_Bucket' }, /^S3_BUCKET: "Bad_Bucket" is not a valid bucket name/],
    [{ S3_BUCKET: 'b-1', S3_FORCE_PATH_STYLE: 'maybe' }, /^S3_FORCE_PATH_STYLE: must be true or false/],
    [{ KILN_WORKER_CONCURRENCY: '0' }, /^KILN_WORKER_CONCURRENCY: must be between 1/],
    [{ KILN_EXECUTOR: 'podman' }, /^KILN_EXECUTOR: must be "docker" or "noop"/],
    [{ DOCKER_HOST: '/var/run/docker.sock' }, /^DOCKER_HOST: must be/],
    [{ KILN_MAX_SECRETS_PER_JOB: '0' }, /^KILN_MAX_SECRETS_PER_JOB: must be between 1/],
    [{ KILN_PUBLIC_URL: 'http://kiln.example.com' }, /^KILN_PUBLIC_URL: must use https:/],
    [{ KILN_SESSION_IDLE: 'soon' }, /^KILN_SESSION_IDLE: /],
    [{ KILN_OIDC_CLIENT_SECRET: 's' }, /^KILN_OIDC_CLIENT_SECRET: is set without KILN_OIDC_CLIENT_ID/],
  ])('names the bad variable: %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads the S3 and JWKS settings', () => {
    const c = loadConfig({
      S3_BUCKET: 'builds', S3_ENDPOINT: 'http://127.0.0.1:9000',
      KILN_JWKS_URL: 'https://idp.example/.well-known/jwks.json', KILN_JWT_ISSUER: 'https://idp.example/', KILN_JWT_AUDIENCE: 'kiln',
    });
    expect(c.s3).toEqual({ bucket: 'builds', endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', forcePathStyle: true });
    expect(c.auth).toMatchObject({ mode: 'jwks', issuer: 'https://idp.example/', audience: 'kiln', algorithms: ['RS256'] });
  });
});
