import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nextFireTimes, parseSchedule } from '../src/schedule/schedule.js';
import { compileJobFile, toExecutionPlan } from '../src/jobfile/compile.js';
import { MAX_JOB_FILE_BYTES } from '../src/jobfile/parse.js';
import type { Diagnostic, JobSpec } from '../src/jobfile/types.js';

const file = (...lines: string[]): string => `${lines.join('\n')}\n`;

function err(line: number, column: number, path: string, message: string | RegExp): Diagnostic {
  return { line, column, path, message: typeof message === 'string' ? message : (expect.stringMatching(message) as unknown as string), severity: 'error' };
}

function jobs(source: string): JobSpec[] {
  const result = compileJobFile(source);
  if (!result.ok) throw new Error(`expected the file to compile:\n${JSON.stringify(result.diagnostics, null, 2)}`);
  return result.jobs;
}

function diagnostics(source: string): Diagnostic[] {
  const result = compileJobFile(source);
  if (result.ok) throw new Error('expected the file to be rejected');
  return result.diagnostics;
}

const DEFAULTS = {
  schedule: null,
  runOnce: false,
  timezone: 'UTC',
  priority: 5,
  image: null,
  repository: null,
  env: {},
  secrets: [],
  timeoutMs: 3_600_000,
  concurrency: 'skip',
  misfire: 'run_once',
  retries: 0,
  network: 'none',
  resources: { cpus: null, memoryBytes: null },
  artifacts: [],
} as const;

describe('compileJobFile on the seed file', () => {
  const seed = readFileSync(new URL('./fixtures/seed-jobs.yaml', import.meta.url), 'utf8');

  it('compiles the seed file verbatim into its two jobs with every default filled in', () => {
    const [build, cleanup] = jobs(seed);
    expect(jobs(seed)).toHaveLength(2);
    expect(build).toEqual({
      ...DEFAULTS,
      name: 'BuildAndTest',
      schedule: '0 0 * * *',
      runOnce: false,
      steps: [
        { name: 'Set up Go', run: 'go mod', timeoutMs: null, env: {} },
        { name: 'Build', run: 'go build -v ./...', timeoutMs: null, env: {} },
        { name: 'Test', run: 'go test -v ./...', timeoutMs: null, env: {} },
      ],
      source: expect.stringMatching(/^name: BuildAndTest\nschedule: "0 0 \* \* \*" {2}# Every day at midnight\n/),
    });
    expect(cleanup).toEqual({
      ...DEFAULTS,
      name: 'NightlyCleanup',
      schedule: '0 2 * * *',
      runOnce: true,
      steps: [{ name: 'Cleanup', run: './cleanup_script.sh', timeoutMs: null, env: {} }],
      source: file(
        'name: NightlyCleanup',
        'schedule: "0 2 * * *"  # Every day at 2 AM',
        'run_once: true          # Run only once',
        'steps:',
        '  - name: Cleanup',
        '    run: ./cleanup_script.sh',
      ),
    });
  });

  it('gives each seed job its own source, which compiles again as the same job', () => {
    for (const job of jobs(seed)) {
      const indented = job.source.trimEnd().split('\n').map((line, i) => (i === 0 ? `  - ${line}` : `    ${line}`));
      expect(jobs(file('jobs:', ...indented))).toEqual([job]);
    }
  });

  it('computes the next fire times of the seed jobs from their schedules', () => {
    const after = new Date('2027-01-01T12:00:00Z');
    const fireTimes = jobs(seed).map((job) => {
      const schedule = parseSchedule(job.schedule!);
      if (!schedule.ok) throw new Error(schedule.error);
      return nextFireTimes(schedule.value, { after, timezone: job.timezone, count: 2 }).map((d) => d.toISOString());
    });
    expect(fireTimes).toEqual([
      ['2027-01-02T00:00:00.000Z', '2027-01-03T00:00:00.000Z'],
      ['2027-01-02T02:00:00.000Z', '2027-01-03T02:00:00.000Z'],
    ]);
  });
});

describe('compileJobFile on valid files', () => {
  it('reads every key of the job file format', () => {
    const source = file(
      'jobs:',
      '  - name: BuildAndTest',
      '    schedule: "*/30 0 9 * * MON-FRI"',
      '    run_once: false',
      '    timezone: Europe/Paris',
      '    priority: high',
      '    image: golang:1.23',
      '    repository:',
      '      url: https://github.com/org/repo.git',
      '      ref: main',
      '    env: { GOFLAGS: -mod=mod, LEVEL: 1.10, VERBOSE: true }',
      '    secrets: [GITHUB_TOKEN]',
      '    timeout: 30m',
      '    concurrency: queue',
      '    misfire: run_all',
      '    retries: 2',
      '    network: bridge',
      '    resources: { cpus: 1.5, memory: 1g }',
      '    artifacts: [coverage.out, bin/]',
      '    steps:',
      '      - name: Build',
      '        run: go build -v ./...',
      '        timeout: 10m',
      '        env: { CGO_ENABLED: "0" }',
      '      - run: |',
      '          go vet ./...',
      '          go test ./...',
    );
    expect(jobs(source)).toEqual([
      {
        name: 'BuildAndTest',
        schedule: '*/30 0 9 * * MON-FRI',
        runOnce: false,
        timezone: 'Europe/Paris',
        priority: 8,
        image: 'golang:1.23',
        repository: { url: 'https://github.com/org/repo.git', ref: 'main' },
        env: { GOFLAGS: '-mod=mod', LEVEL: '1.10', VERBOSE: 'true' },
        secrets: ['GITHUB_TOKEN'],
        timeoutMs: 1_800_000,
        concurrency: 'queue',
        misfire: 'run_all',
        retries: 2,
        network: 'bridge',
        resources: { cpus: 1.5, memoryBytes: 1024 ** 3 },
        artifacts: ['coverage.out', 'bin/'],
        steps: [
          { name: 'Build', run: 'go build -v ./...', timeoutMs: 600_000, env: { CGO_ENABLED: '0' } },
          { name: 'go vet ./...\ngo test ./...', run: 'go vet ./...\ngo test ./...\n', timeoutMs: null, env: {} },
        ],
        source: source.slice('jobs:\n  - '.length).replace(/\n {4}/g, '\n'),
      },
    ]);
  });

  it.each([
    ['priority: low', { priority: 2 }],
    ['priority: normal', { priority: 5 }],
    ['priority: 0', { priority: 0 }],
    ['priority: 10', { priority: 10 }],
    ['schedule: "@every 1h30m"', { schedule: '@every 1h30m' }],
    ['schedule: 1h30m', { schedule: '1h30m' }],
    ['schedule: "0 0 29 2 *"', { schedule: '0 0 29 2 *' }],
    ['schedule: "  @daily "', { schedule: '@daily' }],
    ['repository: { url: "https://example.com/r.git" }', { repository: { url: 'https://example.com/r.git', ref: 'HEAD' } }],
    ['resources: { memory: 256Mi }', { resources: { cpus: null, memoryBytes: 256 * 1024 ** 2 } }],
    ['resources: { memory: 512m }', { resources: { cpus: null, memoryBytes: 512 * 1024 ** 2 } }],
    ['resources: { memory: 4194304 }', { resources: { cpus: null, memoryBytes: 4 * 1024 ** 2 } }],
    ['timeout: 1h30m', { timeoutMs: 5_400_000 }],
    ['timeout: null', { timeoutMs: 3_600_000 }],
    ['retries: ~', { retries: 0 }],
    ['env:', { env: {} }],
    ['artifacts: [dist/app.tar.gz, "reports/"]', { artifacts: ['dist/app.tar.gz', 'reports/'] }],
  ])('reads `%s`', (line, expected) => {
    const [job] = jobs(file('jobs:', '  - name: a', `    ${line}`, '    steps:', '      - run: make'));
    expect(job).toMatchObject(expected);
  });

  it('accepts anchors and aliases to share values between jobs', () => {
    const [a, b] = jobs(file(
      'jobs:',
      '  - name: a',
      '    env: &common { REGION: eu, DEBUG: "1" }',
      '    steps: &steps [{ run: make }]',
      '  - name: b',
      '    env: *common',
      '    steps: *steps',
    ));
    expect(b!.env).toEqual({ REGION: 'eu', DEBUG: '1' });
    expect(b!.steps).toEqual(a!.steps);
  });

  it('warns, without failing, about run_once on a job that has no schedule', () => {
    const result = compileJobFile(file('jobs:', '  - name: once', '    run_once: true', '    steps: [{ run: ls }]'));
    expect(result).toMatchObject({ ok: true, warnings: [{ line: 3, column: 15, path: 'jobs[0].run_once', severity: 'warning' }] });
  });

  it('accepts a file of 1000 jobs quickly', () => {
    const lines = ['jobs:'];
    for (let i = 0; i < 1000; i++) lines.push(`  - name: job-${i}`, `    schedule: "${i % 60} * * * *"`, '    steps:', '      - run: make test');
    const started = performance.now();
    expect(jobs(file(...lines))).toHaveLength(1000);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('toExecutionPlan', () => {
  it('applies the default image, works in /workspace and numbers steps from 0', () => {
    const [job] = jobs(file(
      'jobs:',
      '  - name: a',
      '    env: { A: x }',
      '    secrets: [TOKEN]',
      '    steps:',
      '      - run: echo one',
      '      - name: two',
      '        run: echo two',
      '        timeout: 5s',
    ));
    expect(toExecutionPlan(job!, { image: 'golang:1.23' })).toEqual({
      image: 'golang:1.23',
      workdir: '/workspace',
      env: { A: 'x' },
      secrets: ['TOKEN'],
      network: 'none',
      resources: { cpus: null, memoryBytes: null },
      timeoutMs: 3_600_000,
      repository: null,
      artifacts: [],
      steps: [
        { index: 0, name: 'echo one', run: 'echo one', timeoutMs: null, env: {} },
        { index: 1, name: 'two', run: 'echo two', timeoutMs: 5_000, env: {} },
      ],
    });
  });

  it("prefers the job's own image over the default", () => {
    const [job] = jobs(file('jobs:', '  - name: a', '    image: alpine:3', '    steps: [{ run: ls }]'));
    expect(toExecutionPlan(job!, { image: 'golang:1.23' }).image).toBe('alpine:3');
  });
});

const STEPS = ['    steps:', '      - run: make'];

describe('compileJobFile rejections', () => {
  it.each<[string, string, Diagnostic[]]>([
    ['an unknown key, suggesting the close one', file('jobs:', '  - name: a', '    schedul: "0 0 * * *"', ...STEPS), [
      err(3, 5, 'jobs[0].schedul', 'unknown key "schedul"; did you mean "schedule"?'),
    ]],
    ['an unknown key with nothing close to it', file('jobs:', '  - name: a', '    colour: red', ...STEPS), [
      err(3, 5, 'jobs[0].colour', 'unknown key "colour"'),
    ]],
    ['steps given as a string', file('jobs:', '  - name: a', '    steps: "echo"'), [
      err(3, 12, 'jobs[0].steps', 'steps must be a list of steps, each with a "run" command, got "echo"'),
    ]],
    ['retries given as a string', file('jobs:', '  - name: a', '    retries: "x"', ...STEPS), [
      err(3, 14, 'jobs[0].retries', 'retries must be a whole number from 0 to 10, got "x"'),
    ]],
    ['a run command given as a list', file('jobs:', '  - name: a', '    steps:', '      - run: echo', '      - run: [1]'), [
      err(5, 14, 'jobs[0].steps[1].run', 'run must be a non-empty string, got a list'),
    ]],
    ['a step without run', file('jobs:', '  - name: a', '    steps:', '      - name: build'), [
      err(4, 9, 'jobs[0].steps[0].run', 'missing required key "run": the command of the step'),
    ]],
    ['a step written as a bare string', file('jobs:', '  - name: a', '    steps:', '      - echo hi'), [
      err(4, 9, 'jobs[0].steps[0]', 'steps[0] must be a mapping with a "run" command (- run: make test), got "echo hi"'),
    ]],
    ['a job without steps', file('jobs:', '  - name: a', '    schedule: "@daily"'), [
      err(2, 5, 'jobs[0].steps', 'missing required key "steps": a list of steps, each with a "run" command'),
    ]],
    ['a job with an empty list of steps', file('jobs:', '  - name: a', '    steps: []'), [
      err(3, 12, 'jobs[0].steps', 'steps must list at least one step'),
    ]],
    ['a job without a name', file('jobs:', '  - schedule: "@daily"', ...STEPS), [
      err(2, 5, 'jobs[0].name', 'missing required key "name"'),
    ]],
    ['a name with spaces', file('jobs:', '  - name: build and test', ...STEPS), [
      err(2, 11, 'jobs[0].name', 'name "build and test" may contain only letters, digits, ".", "_" and "-"'),
    ]],
    ['a name over 100 characters', file('jobs:', `  - name: ${'x'.repeat(101)}`, ...STEPS), [
      err(2, 11, 'jobs[0].name', 'name must be 1 to 100 characters long, got 101'),
    ]],
    ['a name that YAML reads as a number', file('jobs:', '  - name: 123', ...STEPS), [
      err(2, 11, 'jobs[0].name', 'name must be a string, got the number 123'),
    ]],
    ['a cron field out of range', file('jobs:', '  - name: a', '    schedule: "61 0 * * *"', ...STEPS), [
      err(3, 15, 'jobs[0].schedule', 'schedule: minute field: 61 is out of range 0-59'),
    ]],
    ['a schedule on Feb 30, which never fires', file('jobs:', '  - name: a', '    schedule: "0 0 30 2 *"', ...STEPS), [
      err(3, 15, 'jobs[0].schedule', 'schedule: "0 0 30 2 *" never fires: no date matches it'),
    ]],
    ['an @every interval under one second', file('jobs:', '  - name: a', '    schedule: "@every 500ms"', ...STEPS), [
      err(3, 15, 'jobs[0].schedule', 'schedule: interval 500ms is shorter than the minimum of 1s'),
    ]],
    ['an unknown time zone', file('jobs:', '  - name: a', '    timezone: Mars/Olympus', ...STEPS), [
      err(3, 15, 'jobs[0].timezone', 'unknown time zone "Mars/Olympus": use an IANA name such as Europe/Paris or UTC'),
    ]],
    ['a duration written in words', file('jobs:', '  - name: a', '    timeout: 10 minutes', ...STEPS), [
      err(3, 14, 'jobs[0].timeout', 'timeout: "10 minutes" is not a duration; write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m'),
    ]],
    ['a !!js/function tag', file('jobs:', '  - name: a', '    steps:', '      - run: !!js/function "function () {}"'), [
      err(4, 14, 'jobs[0].steps[0].run', 'tag !!js/function is not allowed: a job file holds plain strings, numbers, booleans, lists and mappings'),
    ]],
    ['a custom tag', file('jobs:', '  - name: !custom a', ...STEPS), [
      err(2, 11, 'jobs[0].name', 'tag !custom is not allowed: a job file holds plain strings, numbers, booleans, lists and mappings'),
    ]],
    ['two YAML documents', file('jobs:', '  - name: a', ...STEPS, '---', 'jobs:', '  - name: b', ...STEPS), [
      err(5, 1, '', 'a job file holds one YAML document, found 2: put every job in the one "jobs" list'),
    ]],
    ['two jobs with the same name', file('jobs:', '  - name: a', ...STEPS, '  - name: a', ...STEPS), [
      err(5, 11, 'jobs[1].name', 'duplicate job name "a": jobs[0] has it already'),
    ]],
    ['a key given twice in one mapping', file('jobs:', '  - name: a', '    name: b', ...STEPS), [
      err(3, 5, 'jobs[0].name', 'duplicate key "name"'),
    ]],
    ['an unclosed flow sequence', file('jobs:', '  - name: a', '    steps: [', '      { run: make }'), [
      err(5, 1, '', 'YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]'),
    ]],
    ['an unclosed quote', file('jobs:', '  - name: "a', ...STEPS), [
      err(5, 1, '', 'YAML syntax error: Missing closing "quote'),
    ]],
    ['an unquoted cron expression that starts with *', file('jobs:', '  - name: a', '    schedule: */5 * * * *', ...STEPS), [
      err(3, 19, '', /^YAML syntax error: .*must be quoted\)$/),
    ]],
    ['an alias without an anchor', file('jobs:', '  - name: a', '    env: *nope', ...STEPS), [
      err(3, 10, 'jobs[0].env', 'alias *nope refers to no anchor &nope defined before it (a value that starts with * must be quoted)'),
    ]],
    ['a top level that is a list', file('- name: a'), [
      err(1, 1, '', 'the top level must be a mapping with a "jobs" list, got a list'),
    ]],
    ['a top level without jobs', file('job:', '  - name: a'), [
      err(1, 1, 'job', 'unknown key "job"; did you mean "jobs"?'),
      err(1, 1, 'jobs', 'missing required key "jobs": a list of jobs'),
    ]],
    ['an empty list of jobs', file('jobs: []'), [err(1, 7, 'jobs', 'jobs must list at least one job')]],
    ['jobs given as a string', file('jobs: build'), [err(1, 7, 'jobs', 'jobs must be a list of jobs, got "build"')]],
    ['a job given as a string', file('jobs:', '  - build'), [
      err(2, 5, 'jobs[0]', 'jobs[0] must be a mapping with at least "name" and "steps", got "build"'),
    ]],
    ['an empty file', '', [err(1, 1, '', 'the file is empty: expected a mapping with a "jobs" list')]],
    ['a file of only a comment', file('# nothing here'), [err(1, 1, '', 'the file is empty: expected a mapping with a "jobs" list')]],
    ['more than 100 steps', file('jobs:', '  - name: a', '    steps:', ...Array.from({ length: 101 }, () => '      - run: ls')), [
      err(4, 7, 'jobs[0].steps', 'a job may have at most 100 steps, found 101'),
    ]],
    ['a !!binary value', file('jobs:', '  - name: a', '    image: !!binary aGVsbG8=', ...STEPS), [
      err(3, 12, 'jobs[0].image', /^tag !!binary is not allowed/),
    ]],
    ['a repository given as a string', file('jobs:', '  - name: a', '    repository: https://x/y.git', ...STEPS), [
      err(3, 17, 'jobs[0].repository', 'repository must be a mapping with "url" and optionally "ref", got "https://x/y.git"'),
    ]],
    ['a memory size without meaning', file('jobs:', '  - name: a', '    resources: { memory: lots }', ...STEPS), [
      err(3, 26, 'jobs[0].resources.memory', 'memory: "lots" is not a memory size; write bytes or a size such as 512m, 1g, 256Mi or 1Gi'),
    ]],
  ])('rejects %s, at the offending line and column', (_title, source, expected) => {
    expect(diagnostics(source)).toEqual(expected);
  });

  it('reports every problem of the file at once, in file order', () => {
    const source = file(
      'jobs:',
      '  - name: a',
      '    priority: urgent',
      '    concurrency: skp',
      '    misfire: all',
      '    network: host',
      '    retries: 11',
      '    run_once: "yes"',
      '    env: { 1X: a, OK: [1], E: }',
      '    secrets: [GOOD, bad-name, GOOD]',
      '    image: ""',
      '    repository: { ref: main }',
      '    resources: { cpus: 0, memory: 1m }',
      '    artifacts: [/etc/passwd, ../up, a/../../b, ""]',
      '    timeout: 30',
      '    steps:',
      '      - run: "  "',
      '        timeout: 8d',
      '        nme: x',
      '  - name: b',
      '    timezone: Nowhere/City',
      '    steps: [{ run: ls }]',
    );
    expect(diagnostics(source)).toEqual([
      err(3, 15, 'jobs[0].priority', 'priority must be low, normal, high or a whole number from 0 to 10, got "urgent"'),
      err(4, 18, 'jobs[0].concurrency', 'concurrency must be one of skip, queue, replace, got "skp" (did you mean "skip"?)'),
      err(5, 14, 'jobs[0].misfire', 'misfire must be one of skip, run_once, run_all, got "all"'),
      err(6, 14, 'jobs[0].network', 'network must be one of none, bridge, got "host"'),
      err(7, 14, 'jobs[0].retries', 'retries must be a whole number from 0 to 10, got the number 11'),
      err(8, 15, 'jobs[0].run_once', 'run_once must be true or false, got "yes"'),
      err(9, 12, 'jobs[0].env["1X"]', '"1X" is not a valid variable name (letters, digits and _, not starting with a digit)'),
      err(9, 23, 'jobs[0].env.OK', 'OK must be a string, number or boolean (quote "" for an empty value), got a list'),
      err(9, 28, 'jobs[0].env.E', 'E must be a string, number or boolean (quote "" for an empty value), got nothing (null)'),
      err(10, 21, 'jobs[0].secrets[1]', '"bad-name" is not a valid secret name (letters, digits and _, not starting with a digit)'),
      err(10, 31, 'jobs[0].secrets[2]', 'secret "GOOD" is listed twice'),
      err(11, 12, 'jobs[0].image', 'image must be a non-empty string, got ""'),
      err(12, 17, 'jobs[0].repository.url', 'missing required key "url": the address to clone'),
      err(13, 24, 'jobs[0].resources.cpus', 'cpus must be a number greater than 0 and at most 64, got the number 0'),
      err(13, 35, 'jobs[0].resources.memory', 'memory: 1m is less than the minimum of 4 MiB'),
      err(14, 17, 'jobs[0].artifacts[0]', '"/etc/passwd" is absolute; artifact paths are relative to /workspace'),
      err(14, 30, 'jobs[0].artifacts[1]', '"../up" leaves the workspace with ".."'),
      err(14, 37, 'jobs[0].artifacts[2]', '"a/../../b" leaves the workspace with ".."'),
      err(14, 48, 'jobs[0].artifacts[3]', 'an artifact path must not be empty'),
      err(15, 14, 'jobs[0].timeout', 'timeout must be a duration with a unit, such as 30m or 1h30m, got the number 30'),
      err(17, 14, 'jobs[0].steps[0].run', 'run must be a non-empty string, got "  "'),
      err(18, 18, 'jobs[0].steps[0].timeout', 'timeout must be at most 7d'),
      err(19, 9, 'jobs[0].steps[0].nme', 'unknown key "nme"; did you mean "name"?'),
      err(21, 15, 'jobs[1].timezone', 'unknown time zone "Nowhere/City": use an IANA name such as Europe/Paris or UTC'),
    ]);
  });

  it('refuses a file over 256 KiB before parsing it, at line 1 column 1', () => {
    const source = file('jobs:', '  - name: a', ...STEPS) + `# ${'x'.repeat(MAX_JOB_FILE_BYTES)}\n`;
    expect(diagnostics(source)).toEqual([
      err(1, 1, '', `the file is ${Buffer.byteLength(source)} bytes long; the limit is 262144 bytes (256 KiB)`),
    ]);
  });

  it('counts the size limit in UTF-8 bytes and accepts a file just under it', () => {
    const head = file('jobs:', '  - name: a', ...STEPS);
    const padding = MAX_JOB_FILE_BYTES - Buffer.byteLength(head) - 3;
    expect(jobs(`${head}# ${'x'.repeat(padding)}\n`)).toHaveLength(1);
    expect(diagnostics(`${head}# ${'é'.repeat(Math.ceil(padding / 2) + 1)}\n`)[0]!.message).toMatch(/limit is 262144 bytes/);
  });

  it('refuses more than 1000 jobs in one file', () => {
    const lines = ['jobs:'];
    for (let i = 0; i <= 1000; i++) lines.push(`  - {name: j${i}, steps: [{run: ls}]}`);
    expect(diagnostics(file(...lines))).toEqual([err(2, 3, 'jobs', 'a file may hold at most 1000 jobs, found 1001')]);
  });

  it('refuses a YAML alias bomb quickly, where its expansion explodes', () => {
    const source = file(
      'jobs:',
      '  - name: bomb',
      '    env: &a {A: lol}',
      '    steps:',
      ...['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((name, i) => {
        const previous = i === 0 ? 'a' : ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'][i - 1]!;
        return `      - run: &${name} [${Array(9).fill(`*${previous}`).join(',')}]`;
      }),
    );
    const started = performance.now();
    const found = diagnostics(source);
    expect(performance.now() - started).toBeLessThan(500);
    expect(found).toEqual([err(10, 17, '', 'aliases expand the file to more than 200000 nodes (an alias bomb?)')]);
  });

  it('refuses an alias that refers to the node containing it', () => {
    expect(diagnostics(file('jobs: &loop', '  - name: a', '    steps: [{ run: ls }]', '    env: *loop'))).toEqual([
      err(4, 10, '', 'this alias refers to a node that contains it'),
    ]);
  });

  it('keeps only the parser error of a deeply nested document without crashing', () => {
    const found = diagnostics(`jobs: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`);
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((d) => d.severity === 'error')).toBe(true);
  });
});
