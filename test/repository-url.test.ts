import { describe, expect, it } from 'vitest';
import { compileJobFile } from '../src/jobfile/compile.js';
import { repositoryAddress, repositoryUrlProblem, type RepositoryPolicy } from '../src/jobfile/repositoryUrl.js';
import { checkoutFailure, CHECKOUT_EXIT } from '../src/runner/checkoutScript.js';
import { checkoutContainerConfig } from '../src/runner/workspace.js';
import { defaultRunnerSettings } from '../src/runner/settings.js';
import { toCreateOptions } from '../src/runner/docker/convert.js';

const HTTPS_ONLY: RepositoryPolicy = { protocols: ['https'], localRoot: null };
const WITH_ROOT: RepositoryPolicy = { protocols: ['https', 'ssh'], localRoot: '/srv/repos' };

describe('repository URLs as git reads them', () => {
  it.each([
    ['https://github.com/org/repo.git', 'https', null],
    ['HTTP://example.com/r', 'http', null],
    ['ssh://git@host/x.git', 'ssh', null],
    ['git+ssh://host/x', 'ssh', null],
    ['git@github.com:org/repo.git', 'ssh', null],
    ['git://host/x', 'git', null],
    ['file:///srv/repos/a', 'file', '/srv/repos/a'],
    ['file://localhost/srv/repos/a', 'file', '/srv/repos/a'],
    ['/srv/repos/a', 'file', '/srv/repos/a'],
    ['.', 'file', null],
    ['../x', 'file', null],
    ['./host:path', 'file', null],
  ])('reads %s as %s', (url, transport, localPath) => {
    expect(repositoryAddress(url)).toEqual({ transport, localPath });
  });
});

describe('what the server allows at submit', () => {
  it.each([
    ['https://github.com/org/repo.git', HTTPS_ONLY, null],
    ['ssh://git@host/x.git', HTTPS_ONLY, 'the ssh transport is not allowed on this server (KILN_GIT_PROTOCOLS allows https)'],
    ['git://host/x', HTTPS_ONLY, 'the git transport is not allowed on this server (KILN_GIT_PROTOCOLS allows https)'],
    ['.', HTTPS_ONLY, 'local paths and file:// URLs are not allowed on this server (KILN_GIT_LOCAL_ROOT is not set); use an https URL'],
    ['/srv/repos/a', WITH_ROOT, null],
    ['file:///srv/repos/a/b.git', WITH_ROOT, null],
    ['/srv/repos/../../etc', WITH_ROOT, '"/srv/repos/../../etc" is outside the directory this server allows local repositories in (KILN_GIT_LOCAL_ROOT)'],
    ['/srv/repos-other/x', WITH_ROOT, '"/srv/repos-other/x" is outside the directory this server allows local repositories in (KILN_GIT_LOCAL_ROOT)'],
    ['repos/a', WITH_ROOT, '"repos/a" is not an absolute path on the server; local repositories are given as /path or file:///path'],
    ['file://otherhost/srv/repos/a', WITH_ROOT, '"file://otherhost/srv/repos/a" is not an absolute path on the server; local repositories are given as /path or file:///path'],
  ])('%s -> %s', (url, policy, problem) => {
    expect(repositoryUrlProblem(url, policy)).toBe(problem);
  });

  it('puts the diagnostic at the key, and accepts ssh_key only with an ssh URL', () => {
    const file = (repo: string) => `jobs:\n  - name: a\n    repository: ${repo}\n    steps: [{ run: ls }]\n`;
    const refused = compileJobFile(file('{ url: "/etc" }'), HTTPS_ONLY);
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.diagnostics.map((d) => [d.path, d.line, d.severity])).toEqual([['jobs[0].repository.url', 3, 'error']]);
    // The CLI checks a file without a server: no policy, no refusal.
    expect(compileJobFile(file('{ url: "/etc" }')).ok).toBe(true);
    const withKey = compileJobFile(file('{ url: "git@host:x.git", ssh_key: DEPLOY_KEY }'), WITH_ROOT);
    expect(withKey.ok && withKey.jobs[0]!.repository).toEqual({ url: 'git@host:x.git', ref: 'HEAD', sshKey: 'DEPLOY_KEY' });
    const keyOnHttps = compileJobFile(file('{ url: "https://h/x.git", ssh_key: DEPLOY_KEY }'), WITH_ROOT);
    expect(!keyOnHttps.ok && keyOnHttps.diagnostics.map((d) => [d.path, d.message])).toEqual([
      ['jobs[0].repository.ssh_key', 'ssh_key is only for ssh URLs (ssh://host/path or host:path)'],
    ]);
    const badName = compileJobFile(file('{ url: "git@host:x.git", ssh_key: "no such" }'), WITH_ROOT);
    expect(!badName.ok && badName.diagnostics[0]!.path).toBe('jobs[0].repository.ssh_key');
  });
});

describe('the checkout container', () => {
  const settings = { ...defaultRunnerSettings(), gitLocalRoot: '/srv/repos', sshKnownHostsFile: '/etc/kiln/known_hosts', checkoutNetwork: 'git-egress' };
  const step = {
    image: 'build:1',
    env: { A: '1' },
    labels: { kiln: 'true', 'kiln.execution': 'e' },
    network: 'none',
    workdir: '/workspace',
    workdirVolume: { name: 'kiln-e-1-workspace' },
    memoryBytes: 512 * 1024 * 1024,
    cpus: 1,
    name: 'kiln-e-1',
    pidsLimit: 128,
  };

  it('has the job\'s limits, the shared workdir, and only what its transport needs of the host and the network', () => {
    const remote = checkoutContainerConfig(step, { url: 'https://h/x.git', ref: 'main' }, settings, '1000:1000');
    expect(remote).toMatchObject({
      image: settings.gitImage,
      env: {},
      labels: { kiln: 'true', 'kiln.execution': 'e', 'kiln.role': 'checkout' },
      network: 'git-egress',
      workdirVolume: { name: 'kiln-e-1-workspace' },
      readOnlyHostDirs: [],
      memoryBytes: 512 * 1024 * 1024,
      pidsLimit: 128,
      readOnlyRootfs: true,
      user: '1000:1000',
      maxFileBytes: settings.checkoutMaxBytes,
      name: 'kiln-e-1-checkout',
    });
    const local = checkoutContainerConfig(step, { url: '/srv/repos/a', ref: 'main' }, settings, '0:0');
    expect(local).toMatchObject({ network: 'none', readOnlyHostDirs: ['/srv/repos'] });
    const ssh = checkoutContainerConfig(step, { url: 'git@h:x.git', ref: 'main' }, settings, '0:0');
    expect(ssh).toMatchObject({ network: 'git-egress', readOnlyHostDirs: ['/etc/kiln/known_hosts'] });
    const options = toCreateOptions(local);
    expect(options.HostConfig?.CapDrop).toEqual(['ALL']);
    const tmpfs = { Name: 'local', Options: { type: 'tmpfs', device: 'tmpfs', o: `size=${1024 ** 3},mode=1777,nosuid,nodev` } };
    expect(options.HostConfig?.Mounts).toEqual([
      { Type: 'volume', Source: 'kiln-e-1-workspace', Target: '/workspace', VolumeOptions: { NoCopy: true, Labels: local.labels, DriverConfig: tmpfs } },
      { Type: 'volume', Source: '', Target: '/tmp', VolumeOptions: { NoCopy: true, Labels: {}, DriverConfig: tmpfs } },
      { Type: 'bind', Source: '/srv/repos', Target: '/srv/repos', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } },
    ]);
    expect(options.HostConfig?.Ulimits).toContainEqual({ Name: 'fsize', Soft: settings.checkoutMaxBytes, Hard: settings.checkoutMaxBytes });
  });

  it('says which limit stopped it', () => {
    const facts = { shown: 'https://***@h/x.git', ref: 'main', stderr: '', maxFiles: 100, maxBytes: 1024 ** 3, memoryBytes: 256 * 1024 ** 2, oomKilled: false };
    const clean = (s: string) => s || 'git failed';
    expect(checkoutFailure(CHECKOUT_EXIT.tooManyFiles, facts, clean)).toBe('the repository has more than 100 files (KILN_CHECKOUT_MAX_FILES)');
    expect(checkoutFailure(CHECKOUT_EXIT.tooManyBytes, facts, clean)).toBe("the repository's files take more than 1 GiB (KILN_CHECKOUT_MAX_BYTES)");
    expect(checkoutFailure(CHECKOUT_EXIT.noRef, facts, clean)).toBe('https://***@h/x.git has no branch, tag or commit "main"');
    expect(checkoutFailure(137, { ...facts, oomKilled: true }, clean)).toBe("the checkout of https://***@h/x.git ran out of memory (the job's limit of 256 MiB)");
    expect(checkoutFailure(CHECKOUT_EXIT.fetch, { ...facts, stderr: 'error: index-pack died of signal 25' }, clean)).toBe(
      'a file of https://***@h/x.git is larger than 1 GiB (KILN_CHECKOUT_MAX_BYTES)',
    );
  });
});
