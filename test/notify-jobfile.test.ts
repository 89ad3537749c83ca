import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { compileJobFile, type JobFilePolicy } from '../src/jobfile/compile.js';
import type { Diagnostic } from '../src/jobfile/types.js';
import { addressProblem, parseTargetPolicy } from '../src/util/targetPolicy.js';

const SERVER: JobFilePolicy = { protocols: ['https'], localRoot: null };

/** A file with one job whose `notify:` is `lines` (indented under the key). */
const withNotify = (...lines: string[]) => ['jobs:', '  - name: j', '    steps: [{run: make}]', '    notify:', ...lines.map((l) => `      ${l}`), ''].join('\n');

function problems(source: string, policy: JobFilePolicy | undefined = SERVER): Diagnostic[] {
  const result = compileJobFile(source, policy);
  if (result.ok) throw new Error(`expected diagnostics, the file compiled: ${JSON.stringify(result.jobs[0]!.notify)}`);
  return result.diagnostics;
}

describe('notify: in the job file', () => {
  it('normalises rules into JobSpec.notify, and leaves it out when the file has none', () => {
    const result = compileJobFile(
      withNotify(
        '- on: [failed, running_longer]',
        '  longer_than: 30m',
        '  webhook: { url: "https://hooks.example.com/kiln", secret: HOOK_SECRET }',
        '  slack: { secret: SLACK_URL }',
        '- on: [fixed]',
        '  email: [oncall@example.com, dev@example.org]',
        '  slack: { url: "https://hooks.slack.com/services/T/B/X" }',
      ),
      SERVER,
    );
    expect(result.ok && result.jobs[0]!.notify).toEqual([
      { on: ['failed', 'running_longer'], longerThanMs: 1_800_000, webhook: { url: 'https://hooks.example.com/kiln', secret: 'HOOK_SECRET' }, slack: { secret: 'SLACK_URL' } },
      { on: ['fixed'], email: ['oncall@example.com', 'dev@example.org'], slack: { url: 'https://hooks.slack.com/services/T/B/X' } },
    ]);
    const plain = compileJobFile('jobs:\n  - name: j\n    steps: [{run: make}]\n', SERVER);
    expect(plain.ok && 'notify' in plain.jobs[0]!).toBe(false);
  });

  it.each([
    [['- on: [failed, exploded]', '  webhook: { url: "https://h.example.com" }'], 5, 22, 'jobs[0].notify[0].on[1]', /must be one of failed, first_failure, fixed, timed_out, missed, running_longer, got "exploded"/],
    [['- on: [failed, failed]', '  webhook: { url: "https://h.example.com" }'], 5, 22, 'jobs[0].notify[0].on[1]', /listed twice/],
    [['- on: []', '  webhook: { url: "https://h.example.com" }'], 5, 13, 'jobs[0].notify[0].on', /at least one event/],
    [['- on: [failed]', '  webhok: { url: "https://h.example.com" }'], 6, 9, 'jobs[0].notify[0].webhok', /unknown key "webhok"; did you mean "webhook"\?/],
    [['- on: [failed]'], 5, 9, 'jobs[0].notify[0]', /at least one channel/],
    [['- webhook: { url: "https://h.example.com" }'], 5, 9, 'jobs[0].notify[0].on', /missing required key "on"/],
    [['- on: [failed]', '  webhook: { url: "ftp://h.example.com/x" }'], 6, 25, 'jobs[0].notify[0].webhook.url', /only http and https/],
    [['- on: [failed]', '  webhook: { url: "https://user:pw@h.example.com/x" }'], 6, 25, 'jobs[0].notify[0].webhook.url', /must not carry credentials/],
    [['- on: [failed]', '  webhook: { url: "not a url" }'], 6, 25, 'jobs[0].notify[0].webhook.url', /is not a URL/],
    [['- on: [failed]', '  webhook: { url: "http://10.1.2.3/hook" }'], 6, 25, 'jobs[0].notify[0].webhook.url', /refused target: 10\.1\.2\.3 is a private address.*KILN_WEBHOOK_ALLOW/],
    [['- on: [failed]', '  webhook: { url: "http://127.0.0.1:8080/hook" }'], 6, 25, 'jobs[0].notify[0].webhook.url', /refused target: 127\.0\.0\.1 is a loopback address/],
    [['- on: [failed]', '  webhook: { url: "http://[::1]/hook" }'], 6, 25, 'jobs[0].notify[0].webhook.url', /refused target: ::1 is a loopback address/],
    [['- on: [failed]', '  slack: { url: "http://localhost:9/x" }'], 6, 23, 'jobs[0].notify[0].slack.url', /refused target: 127\.0\.0\.1 is a loopback address/],
    [['- on: [failed]', '  webhook: { url: "http://169.254.169.254/latest" }'], 6, 25, 'jobs[0].notify[0].webhook.url', /linkLocal address/],
    [['- on: [failed]', '  webhook: { url: "https://h.example.com", secret: "bad-name" }'], 6, 58, 'jobs[0].notify[0].webhook.secret', /not a valid secret name/],
    [['- on: [failed]', '  slack: { url: "https://h.example.com", secret: S }'], 6, 16, 'jobs[0].notify[0].slack', /exactly one of "url"/],
    [['- on: [failed]', '  email: [oncall]'], 6, 17, 'jobs[0].notify[0].email[0]', /"oncall" is not an email address/],
    [['- on: [failed]', '  email: []'], 6, 16, 'jobs[0].notify[0].email', /1 to 10 addresses/],
    [['- on: [running_longer]', '  webhook: { url: "https://h.example.com" }'], 5, 13, 'jobs[0].notify[0].longer_than', /running_longer needs "longer_than"/],
    [['- on: [failed]', '  longer_than: 5m', '  webhook: { url: "https://h.example.com" }'], 6, 9, 'jobs[0].notify[0].longer_than', /only for rules with running_longer/],
    [['- on: [running_longer]', '  longer_than: soon', '  webhook: { url: "https://h.example.com" }'], 6, 22, 'jobs[0].notify[0].longer_than', /longer_than: /],
  ])('%j: a diagnostic at %i:%i', (rule, line, column, path, message) => {
    const found = problems(withNotify(...rule));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ line, column, path, severity: 'error' });
    expect(found[0]!.message).toMatch(message);
  });

  it('allows a literal private target inside KILN_WEBHOOK_ALLOW, and judges no literal target where no server asks (the CLI)', () => {
    const source = withNotify('- on: [failed]', '  webhook: { url: "http://10.1.2.3/hook" }', '- on: [fixed]', '  webhook: { url: "http://localhost:8080/x" }');
    expect(compileJobFile(source, { ...SERVER, webhookAllow: parseTargetPolicy(['10.0.0.0/8', 'localhost']) }).ok).toBe(true);
    expect(compileJobFile(source).ok).toBe(true);
    expect(problems(source, { ...SERVER, webhookAllow: parseTargetPolicy(['10.0.0.0/8']) })).toHaveLength(1);
  });

  it('warns about email rules on a server without KILN_SMTP_URL, and not on one with it', () => {
    const source = withNotify('- on: [failed]', '  email: [oncall@example.com]');
    const without = compileJobFile(source, SERVER);
    expect(without.ok && without.warnings).toEqual([
      { line: 6, column: 9, path: 'jobs[0].notify[0].email', severity: 'warning', message: expect.stringMatching(/^KILN_SMTP_URL is not set on this server/) },
    ]);
    const withSmtp = compileJobFile(source, { ...SERVER, smtp: true });
    expect(withSmtp.ok && withSmtp.warnings).toEqual([]);
  });

  it('takes at most 10 rules', () => {
    const rules = Array.from({ length: 11 }, () => ['- on: [failed]', '  webhook: { url: "https://h.example.com" }']).flat();
    expect(problems(withNotify(...rules))[0]!.message).toMatch(/at most 10 notify rules, found 11/);
  });
});

describe('the target policy', () => {
  it('refuses every address but public unicast unless allowed, IPv4-mapped IPv6 included', () => {
    const none = parseTargetPolicy([]);
    expect(addressProblem('h', '93.184.216.34', none)).toBeNull();
    expect(addressProblem('h', '2606:4700::1111', none)).toBeNull();
    for (const a of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '0.0.0.0', '224.0.0.1', '100.64.0.1', '::1', 'fe80::1', 'fd00::1', '::', '::ffff:127.0.0.1', '::ffff:10.0.0.1']) {
      expect(addressProblem('h', a, none), a).toMatch(/address; Kiln reaches only public addresses/);
    }
    const some = parseTargetPolicy(['127.0.0.1/32', 'fd00::/8', 'hooks.internal']);
    expect(addressProblem('h', '127.0.0.1', some)).toBeNull();
    expect(addressProblem('h', '::ffff:127.0.0.1', some)).toBeNull();
    expect(addressProblem('h', '127.0.0.2', some)).not.toBeNull();
    expect(addressProblem('h', 'fd12::1', some)).toBeNull();
    expect(addressProblem('hooks.internal', '10.9.9.9', some)).toBeNull();
  });
});

describe('notification settings', () => {
  it('reads KILN_WEBHOOK_ALLOW, KILN_SMTP_URL and KILN_SMTP_FROM, with defaults', () => {
    expect(loadConfig({}).notify).toEqual({ webhookAllow: { cidrs: [], hosts: [] }, smtpUrl: null, smtpFrom: 'kiln@localhost', leaseMs: 30_000 });
    const c = loadConfig({
      KILN_WEBHOOK_ALLOW: '127.0.0.1/32, 10.0.0.5,Hooks.Internal',
      KILN_SMTP_URL: 'smtps://user:pw@mail.example.com:465',
      KILN_PUBLIC_URL: 'https://kiln.example.com',
      KILN_NOTIFY_LEASE_MS: '2000',
    });
    expect(c.notify).toEqual({
      webhookAllow: { cidrs: ['127.0.0.1/32', '10.0.0.5/32'], hosts: ['hooks.internal'] },
      smtpUrl: 'smtps://user:pw@mail.example.com:465',
      smtpFrom: 'kiln@kiln.example.com',
      leaseMs: 2000,
    });
    expect(loadConfig({ KILN_SMTP_FROM: 'ci@example.com' }).notify.smtpFrom).toBe('ci@example.com');
  });

  it.each([
    [{ KILN_WEBHOOK_ALLOW: '10.0.0.0/40' }, /^KILN_WEBHOOK_ALLOW: "10.0.0.0\/40" is not a CIDR block/],
    [{ KILN_WEBHOOK_ALLOW: 'http://x' }, /^KILN_WEBHOOK_ALLOW: "http:\/\/x" is not a CIDR block/],
    [{ KILN_WEBHOOK_ALLOW: 'bad_host!' }, /^KILN_WEBHOOK_ALLOW: "bad_host!" is neither an address, a CIDR block nor a host name/],
    [{ KILN_SMTP_URL: 'http://mail.example.com' }, /^KILN_SMTP_URL: must use smtp: or smtps:/],
    [{ KILN_SMTP_URL: 'smtp//nope' }, /^KILN_SMTP_URL: is not a valid URL/],
    [{ KILN_SMTP_FROM: 'Kiln <kiln@example.com>' }, /^KILN_SMTP_FROM: must be an email address/],
    [{ KILN_NOTIFY_LEASE_MS: '10' }, /^KILN_NOTIFY_LEASE_MS: must be between 1000/],
  ])('names the bad variable: %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});
