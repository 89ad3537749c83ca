import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authFor, registryOf } from '../src/runner/docker/images.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { startTestRegistry, type TestRegistry } from './helpers/registry.js';
import { jobYaml, outputOf, runJob } from './helpers/runner.js';

describe('registryOf and authFor', () => {
  it.each([
    ['golang:1.23', 'docker.io'],
    ['library/golang:1.23', 'docker.io'],
    ['ghcr.io/org/image:tag', 'ghcr.io'],
    ['127.0.0.1:5000/kiln/x:1', '127.0.0.1:5000'],
    ['localhost/x', 'localhost'],
  ])('reads the registry of %s as %s', (image, registry) => {
    expect(registryOf(image)).toBe(registry);
  });

  it('picks the credentials of the image’s registry only', () => {
    const auth = { 'ghcr.io': { username: 'u', password: 'p' }, 'docker.io': { username: 'hub', password: 'h' } };
    expect(authFor('ghcr.io/org/x', auth)).toEqual({ username: 'u', password: 'p', serveraddress: 'ghcr.io' });
    expect(authFor('golang:1.23', auth)).toEqual({ username: 'hub', password: 'h', serveraddress: 'https://index.docker.io/v1/' });
    expect(authFor('quay.io/x/y', auth)).toBeUndefined();
  });
});

describe('images of a job (real Docker engine, registry on loopback)', () => {
  let docker: Dockerode;
  let registry: TestRegistry;
  let k: TestKiln;
  let token: string;
  const pulled: string[] = [];

  beforeAll(async () => {
    docker = await requireDocker();
    registry = await startTestRegistry({ image: TEST_IMAGE, username: 'kiln-ci', password: 'registry-pass' });
    k = await startTestKiln({
      env: {
        KILN_REGISTRY_AUTH: JSON.stringify({ [registry.host]: { username: 'kiln-ci', password: 'registry-pass' } }),
        // Every user may pull these with the operator's credentials (required with KILN_REGISTRY_AUTH).
        KILN_REGISTRY_AUTH_IMAGES: `${registry.host}/kiln-test/*`,
        KILN_PULL_TIMEOUT_MS: '3000',
      },
    });
    token = await k.token('puller');
  });

  afterAll(async () => {
    await k?.stop();
    for (const image of pulled) await docker.getImage(image).remove({ force: true }).catch(() => undefined);
    await registry?.stop();
  });

  it('pulls a missing image with the credentials the operator configured, then runs the job in it', async () => {
    const image = `${registry.host}/${registry.repository}:v${Date.now()}`;
    pulled.push(image);
    await expect(docker.getImage(image).inspect()).rejects.toMatchObject({ statusCode: 404 });
    const e = await runJob(k, token, jobYaml('Pulled', ['echo running in the pulled image'], [`image: ${image}`]));
    expect(e.status, e.error ?? '').toBe('SUCCEEDED');
    expect(outputOf(e.logs)).toEqual(['running in the pulled image']);
    expect(registry.authorizations).toContain(`Basic ${Buffer.from('kiln-ci:registry-pass').toString('base64')}`);
    await expect(docker.getImage(image).inspect()).resolves.toBeTruthy();
  });

  it('ends FAILED with the reason when the registry refuses the pull', async () => {
    // The same registry under another name, for which no credentials are configured.
    const image = `localhost:${registry.host.split(':')[1]}/${registry.repository}:v1`;
    const started = Date.now();
    const e = await runJob(k, token, jobYaml('Unauthorized', ['echo never'], [`image: ${image}`]));
    expect(e.status).toBe('FAILED');
    expect(e.error).toMatch(new RegExp(`^image "${image}" is not available locally and could not be pulled: .*(unauthorized|authentication required|no basic auth credentials)`, 'i'));
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('never hangs on a registry that does not answer: the pull times out and the execution fails', async () => {
    const image = `${registry.host}/${registry.hanging}:v1`;
    const started = Date.now();
    const e = await runJob(k, token, jobYaml('Hanging', ['echo never'], [`image: ${image}`]));
    expect(e.status).toBe('FAILED');
    expect(e.error).toBe(`image "${image}" is not available locally and could not be pulled: the pull did not finish within 3000 ms`);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('ends FAILED quickly when the image exists nowhere', async () => {
    const image = '127.0.0.1:1/kiln-test/no-such-image:latest';
    const e = await runJob(k, token, jobYaml('NoImage', ['echo never'], [`image: "${image}"`]));
    expect(e.status).toBe('FAILED');
    expect(e.error).toMatch(new RegExp(`^image "${image.replaceAll('.', '\\.')}" is not available locally and could not be pulled: `));
    expect(e.steps.every((s) => s.status === 'SKIPPED')).toBe(true);
  });
});
