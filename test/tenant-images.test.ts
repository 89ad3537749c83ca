import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { imageMatches, operatorCredentials, parseRegistrySecret, registrySecretName, repositoryOf } from '../src/runner/registryAccess.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { startTestRegistry, type TestRegistry } from './helpers/registry.js';
import { jobYaml, logsOf, outputOf, runJob } from './helpers/runner.js';

describe('whose credentials pull an image', () => {
  it.each([
    ['alpine', 'docker.io/library/alpine'],
    ['alpine:3.20', 'docker.io/library/alpine'],
    ['docker.io/alpine', 'docker.io/library/alpine'],
    ['org/app:1', 'docker.io/org/app'],
    ['ghcr.io/org/app:tag@sha256:abc', 'ghcr.io/org/app'],
    ['127.0.0.1:5000/team/app:v1', '127.0.0.1:5000/team/app'],
    ['localhost/app', 'localhost/app'],
  ])('reads %s as the repository %s', (image, repo) => {
    expect(repositoryOf(image)).toBe(repo);
  });

  it('lets the operator share credentials for the images listed only', () => {
    const auth = { 'registry.example.com': { username: 'op', password: 'p' }, 'docker.io': { username: 'hub', password: 'h' } };
    const allowed = ['registry.example.com/shared/*', 'docker.io/library/golang'];
    expect(imageMatches('registry.example.com/shared/base:1', allowed)).toBe(true);
    expect(imageMatches('registry.example.com/sharedsecret/app', allowed)).toBe(false);
    expect(operatorCredentials('registry.example.com/shared/base:1', auth, allowed)).toEqual({ username: 'op', password: 'p' });
    expect(operatorCredentials('registry.example.com/private/app:1', auth, allowed)).toBeNull();
    expect(operatorCredentials('golang:1.23', auth, allowed)).toEqual({ username: 'hub', password: 'h' });
    expect(operatorCredentials('org/private:1', auth, allowed)).toBeNull();
    expect(operatorCredentials('org/private:1', auth, ['*'])).toEqual({ username: 'hub', password: 'h' });
  });

  it('names the secret an owner keeps their credentials in, and reads it', () => {
    expect(registrySecretName('ghcr.io')).toBe('REGISTRY_AUTH_GHCR_IO');
    expect(registrySecretName('127.0.0.1:5000')).toBe('REGISTRY_AUTH_127_0_0_1_5000');
    expect(parseRegistrySecret('S', 'alice:p:with:colons')).toEqual({ username: 'alice', password: 'p:with:colons' });
    expect(parseRegistrySecret('S', '{"identitytoken":"t"}')).toEqual({ identitytoken: 't' });
    for (const bad of ['no-colon', ':p', 'u:', '{"user":"x"}', '{not json']) {
      expect(() => parseRegistrySecret('REGISTRY_AUTH_X', bad)).toThrow(/^the secret REGISTRY_AUTH_X must be "username:password" or JSON/);
    }
  });

  it('refuses operator credentials that do not say which images every user may pull with them', () => {
    const auth = JSON.stringify({ 'registry.example.com': { username: 'op', password: 'p' } });
    expect(() => loadConfig({ KILN_REGISTRY_AUTH: auth })).toThrow(/^KILN_REGISTRY_AUTH_IMAGES: is required with KILN_REGISTRY_AUTH/);
    expect(() => loadConfig({ KILN_REGISTRY_AUTH: auth, KILN_REGISTRY_AUTH_IMAGES: 'registry.example.com/team/**' })).toThrow(/^KILN_REGISTRY_AUTH_IMAGES: "registry\.example\.com\/team\/\*\*" is not/);
    expect(loadConfig({ KILN_REGISTRY_AUTH: auth, KILN_REGISTRY_AUTH_IMAGES: 'registry.example.com/team/*, 127.0.0.1:5000/x' }).runner.registryAuthImages).toEqual([
      'registry.example.com/team/*',
      '127.0.0.1:5000/x',
    ]);
  });
});

describe("a private image pulled with one owner's credentials (real Docker engine, registry on loopback)", () => {
  let docker: Dockerode;
  let registry: TestRegistry;
  let k: TestKiln;
  let image: string;
  let imageId: string;
  const SECRET_FILE_TEXT = 'alice-private-binary';
  const basic = Buffer.from('alice-reg:alice-pass').toString('base64');

  beforeAll(async () => {
    docker = await requireDocker();
    // An image of Alice's own: the test image plus a file, so that its id is no other local image's.
    const source = `kiln-test/alice-private-src:${Date.now()}`;
    const maker = await docker.createContainer({ Image: TEST_IMAGE, Cmd: ['sh', '-c', `echo ${SECRET_FILE_TEXT} > /alice-secret`], HostConfig: { NetworkMode: 'none' } });
    await maker.start();
    await maker.wait();
    const [repo, tag] = source.split(':');
    await maker.commit({ repo, tag });
    await maker.remove({ force: true });
    registry = await startTestRegistry({ image: source, username: 'alice-reg', password: 'alice-pass' });
    imageId = (await docker.getImage(source).inspect()).Id;
    // Only the registry has it now: Alice's first run must pull it.
    await docker.getImage(source).remove({ force: true });
    image = `${registry.host}/${registry.repository}:v1`;
    k = await startTestKiln({ env: { KILN_PULL_TIMEOUT_MS: '20000' } });
  });

  afterAll(async () => {
    await k?.stop();
    await docker?.getImage(imageId).remove({ force: true }).catch(() => undefined);
    await registry?.stop();
  });

  const setSecret = async (token: string, name: string, value: string) => {
    const r = await k.gql(`mutation($n: String!, $v: String!) { setSecret(name: $n, value: $v) { name } }`, { n: name, v: value }, token);
    expect(r.errors).toBeUndefined();
  };

  it('runs for the owner whose credentials pulled it and for owners whose own credentials can pull it, never for another owner', async () => {
    const [alice, bob, carol] = await Promise.all([k.token('alice'), k.token('bob'), k.token('carol')]);
    const secretName = registrySecretName(registry.host);
    await setSecret(alice, secretName, 'alice-reg:alice-pass');

    const first = await runJob(k, alice, jobYaml('AliceBuild', ['cat /alice-secret'], [`image: ${image}`]));
    expect(first.status, first.error ?? '').toBe('SUCCEEDED');
    expect(outputOf(first.logs)).toEqual([SECRET_FILE_TEXT]);
    expect(registry.authorizations).toContain(`Basic ${basic}`);
    expect((await docker.getImage(image).inspect()).Id).toBe(imageId);

    // Bob has no credentials: by name, and by the image's id, it is as if the image were not here.
    for (const [name, ref] of [['BobByName', image], ['BobById', imageId], ['BobByShortId', imageId.slice(7, 19)]] as const) {
      const before = registry.authorizations.length;
      const e = await runJob(k, bob, jobYaml(name, ['cat /alice-secret'], [`image: "${ref}"`]));
      expect(e.status).toBe('FAILED');
      expect(e.error).toMatch(/is not available locally and could not be pulled: .*; to pull with credentials, store them as your secret REGISTRY_AUTH_[A-Z0-9_]+$/);
      expect(e.error).not.toMatch(/another owner|alice/i);
      expect(e.steps.every((s) => s.status === 'SKIPPED')).toBe(true);
      expect((await logsOf(k, bob, e.id)).map((l) => l.text).join('\n')).not.toContain(SECRET_FILE_TEXT);
      // Bob's pull of the name went to the registry without credentials, never with Alice's.
      expect(registry.authorizations.slice(before).filter((a) => a !== undefined)).toEqual([]);
    }

    // Alice is recorded: her next run needs no registry at all.
    const before = registry.authorizations.length;
    const again = await runJob(k, alice, jobYaml('AliceBuild', ['cat /alice-secret'], [`image: ${image}`]));
    expect(again.status).toBe('SUCCEEDED');
    expect(registry.authorizations.length).toBe(before);

    // Carol has credentials of her own: one pull proves it, and her build runs.
    await setSecret(carol, secretName, 'alice-reg:alice-pass');
    const carols = await runJob(k, carol, jobYaml('CarolBuild', ['cat /alice-secret'], [`image: ${image}`]));
    expect(carols.status, carols.error ?? '').toBe('SUCCEEDED');
    expect(outputOf(carols.logs)).toEqual([SECRET_FILE_TEXT]);

    // A malformed secret is the owner's to fix, said plainly.
    await setSecret(bob, secretName, 'just-a-token');
    const malformed = await runJob(k, bob, jobYaml('BobMalformed', ['true'], [`image: ${image}`]));
    expect(malformed.status).toBe('FAILED');
    expect(malformed.error).toMatch(new RegExp(`^the secret ${secretName} must be "username:password" or JSON`));
  }, 180_000);

  it("never lends the operator's credentials for an image outside KILN_REGISTRY_AUTH_IMAGES", async () => {
    const op = await startTestKiln({
      env: {
        KILN_REGISTRY_AUTH: JSON.stringify({ [registry.host]: { username: 'alice-reg', password: 'alice-pass' } }),
        KILN_REGISTRY_AUTH_IMAGES: `${registry.host}/shared/*`,
      },
    });
    try {
      const dave = await op.token('dave');
      const before = registry.authorizations.length;
      // Not present (a tag never pulled), so the pull decides; the operator's account could read it.
      const e = await runJob(op, dave, jobYaml('DaveBuild', ['cat /alice-secret'], [`image: ${registry.host}/${registry.repository}:v2`]));
      expect(e.status).toBe('FAILED');
      expect(e.error).toMatch(/could not be pulled: .*(unauthorized|authentication required|no basic auth credentials)/i);
      expect(registry.authorizations.slice(before).filter((a) => a !== undefined)).toEqual([]);
    } finally {
      await op.stop();
    }
  }, 120_000);
});
