import { isMap, isScalar, type YAMLMap } from 'yaml';
import { isValidTimezone, parseSchedule } from '../schedule/schedule.js';
import { childPath } from './diagnostics.js';
import type { ParsedJobFile } from './parse.js';
import { repositoryAddress, repositoryUrlProblem, type RepositoryPolicy } from './repositoryUrl.js';
import { Reader, describe, given, type Field } from './reader.js';
import { lintCache } from './cache.js';
import { lintHook } from './hook.js';
import { lintNotify, type NotifyPolicy } from './notify.js';
import { lintServices, type ServiceSpec } from './services.js';
import type { CacheSpec, ConcurrencyPolicy, HookSpec, Diagnostic, MisfirePolicy, NetworkMode, NotifyRule } from './types.js';
import { PUBLIC_ONLY, type TargetPolicy } from '../util/targetPolicy.js';
import { ENV_NAME_PATTERN, JOB_NAME_PATTERN, MAX_JOB_NAME_LENGTH, artifactIdentity, normalizeArtifactPath, parseMemory } from './values.js';

/** Most jobs one file may hold. */
export const MAX_JOBS_PER_FILE = 1000;
/** Most steps one job may have. */
export const MAX_STEPS_PER_JOB = 100;
/**
 * Most secrets one job may list (docs/design.md#quotas): each one is masked in every byte of the
 * build's output, so the list is bounded like the owner's store of secrets.
 */
export const MAX_SECRETS_PER_JOB = 100;
/** Most artifact paths one job may list. */
export const MAX_ARTIFACTS_PER_JOB = 100;
/** Longest `timeout` accepted, for a job or a step. */
export const MAX_TIMEOUT_MS = 7 * 24 * 3_600_000;

const JOB_KEYS = [
  'name', 'schedule', 'run_once', 'timezone', 'priority', 'image', 'repository', 'env', 'secrets',
  'timeout', 'concurrency', 'misfire', 'retries', 'network', 'resources', 'artifacts', 'cache', 'steps', 'services',
  'hook', 'badge', 'notify',
] as const;
const STEP_KEYS = ['name', 'run', 'timeout', 'env'] as const;
const PRIORITIES: Readonly<Record<string, number>> = { low: 2, normal: 5, high: 8 };
const CONCURRENCY: readonly ConcurrencyPolicy[] = ['skip', 'queue', 'replace'];
const MISFIRE: readonly MisfirePolicy[] = ['skip', 'run_once', 'run_all'];
const NETWORK: readonly NetworkMode[] = ['none', 'bridge'];

/** One step as written; absent keys are undefined. */
export interface StepDraft {
  name?: string;
  run: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** One valid job as written, before defaults: absent (or null) keys are undefined. */
export interface JobDraft {
  name: string;
  schedule?: string;
  runOnce?: boolean;
  timezone?: string;
  priority?: number;
  image?: string;
  repository?: { url: string; ref?: string; sshKey?: string };
  env?: Record<string, string>;
  secrets?: string[];
  timeoutMs?: number;
  concurrency?: ConcurrencyPolicy;
  misfire?: MisfirePolicy;
  retries?: number;
  network?: NetworkMode;
  resources?: { cpus?: number; memoryBytes?: number };
  artifacts?: string[];
  cache?: CacheSpec;
  steps: StepDraft[];
  services?: ServiceSpec[];
  hook?: HookSpec;
  badge?: boolean;
  notify?: NotifyRule[];
  /** Start and end offsets of the job's mapping in the file. */
  range: [number, number];
  /** True for a flow mapping (`{ name: a, ... }`), which may share its lines with others. */
  flow: boolean;
}

/** The valid jobs, and every diagnostic found (a job with an error yields no draft). */
export interface LintResult {
  jobs: JobDraft[];
  diagnostics: Diagnostic[];
}

function missing(r: Reader, fields: Map<string, Field>, map: YAMLMap, path: string, key: string, what = ''): void {
  r.error(fields.get(key)?.keyAt ?? map.range![0], childPath(path, key), `missing required key "${key}"${what}`);
}

function lintEnv(r: Reader, field: Field): Record<string, string> | undefined {
  const map = r.map(field, 'a mapping of NAME: value');
  if (map === undefined) return undefined;
  const env: Record<string, string> = {};
  for (const [name, value] of r.entries(map, field.path)) {
    if (!ENV_NAME_PATTERN.test(name)) {
      r.error(value.keyAt, value.path, `"${name}" is not a valid variable name (letters, digits and _, not starting with a digit)`);
      continue;
    }
    const text = r.scalarText(value);
    if (text !== undefined) env[name] = text;
  }
  return env;
}

function lintSecrets(r: Reader, field: Field, maxSecrets: number): string[] | undefined {
  const list = r.list(field, 'a list of secret names');
  if (list === undefined) return undefined;
  if (list.items.length > maxSecrets) {
    return void r.error(field.at, field.path, `a job may list at most ${maxSecrets} secrets, found ${list.items.length}`);
  }
  const names: string[] = [];
  for (const item of r.items(list, field)) {
    const name = r.string(item);
    if (name === undefined) continue;
    if (!ENV_NAME_PATTERN.test(name)) r.error(item.at, item.path, `"${name}" is not a valid secret name (letters, digits and _, not starting with a digit)`);
    else if (names.includes(name)) r.error(item.at, item.path, `secret "${name}" is listed twice`);
    else names.push(name);
  }
  return names;
}

function lintPriority(r: Reader, field: Field): number | undefined {
  const value = isScalar(field.node) ? field.node.value : undefined;
  if (typeof value === 'string' && value in PRIORITIES) return PRIORITIES[value];
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 10) return value;
  return r.wrong(field, 'low, normal, high or a whole number from 0 to 10');
}

function lintRepository(r: Reader, field: Field, policy: RepositoryPolicy | undefined): JobDraft['repository'] {
  const map = r.map(field, 'a mapping with "url" and optionally "ref"');
  if (map === undefined) return undefined;
  const fields = r.entries(map, field.path, ['url', 'ref', 'ssh_key']);
  const urlField = given(fields, 'url');
  if (urlField === undefined) return void missing(r, fields, map, field.path, 'url', ': the address to clone');
  const url = r.text(urlField);
  const problem = url === undefined || policy === undefined ? null : repositoryUrlProblem(url, policy);
  if (problem !== null) r.error(urlField.at, urlField.path, `url: ${problem}`);
  const refField = given(fields, 'ref');
  const ref = refField === undefined ? undefined : r.text(refField);
  const keyField = given(fields, 'ssh_key');
  const sshKey = keyField === undefined ? undefined : lintSshKey(r, keyField, url);
  if (url === undefined || problem !== null || (keyField !== undefined && sshKey === undefined)) return undefined;
  return sshKey === undefined ? { url, ref } : { url, ref, sshKey };
}

/** `ssh_key`: the name of the owner's secret holding an ssh URL's deploy key (docs/design.md#sandboxed-checkout). */
function lintSshKey(r: Reader, field: Field, url: string | undefined): string | undefined {
  const name = r.string(field);
  if (name === undefined) return undefined;
  if (!ENV_NAME_PATTERN.test(name)) return void r.error(field.at, field.path, `"${name}" is not a valid secret name (letters, digits and _, not starting with a digit)`);
  if (url !== undefined && repositoryAddress(url).transport !== 'ssh') return void r.error(field.at, field.path, 'ssh_key is only for ssh URLs (ssh://host/path or host:path)');
  return name;
}

function lintResources(r: Reader, field: Field): JobDraft['resources'] {
  const map = r.map(field, 'a mapping with "cpus" and/or "memory"');
  if (map === undefined) return undefined;
  const fields = r.entries(map, field.path, ['cpus', 'memory']);
  const resources: NonNullable<JobDraft['resources']> = {};
  const cpus = given(fields, 'cpus');
  if (cpus !== undefined) {
    const value = isScalar(cpus.node) ? cpus.node.value : undefined;
    if (typeof value === 'number' && value > 0 && value <= 64) resources.cpus = value;
    else r.wrong(cpus, 'a number greater than 0 and at most 64');
  }
  const memory = given(fields, 'memory');
  if (memory !== undefined) {
    const value = isScalar(memory.node) ? memory.node.value : undefined;
    if (typeof value !== 'string' && typeof value !== 'number') r.wrong(memory, 'a size such as 512m or 1Gi, or a number of bytes');
    else {
      const bytes = parseMemory(value);
      if (typeof bytes === 'number') resources.memoryBytes = bytes;
      else r.error(memory.at, memory.path, `memory: ${bytes}`);
    }
  }
  return resources;
}

/** Each path in its canonical form, once: `big`, `./big` and `.//big` are one artifact, stored once. */
function lintArtifacts(r: Reader, field: Field): string[] | undefined {
  const list = r.list(field, 'a list of paths relative to /workspace');
  if (list === undefined) return undefined;
  if (list.items.length > MAX_ARTIFACTS_PER_JOB) {
    return void r.error(field.at, field.path, `a job may list at most ${MAX_ARTIFACTS_PER_JOB} artifacts, found ${list.items.length}`);
  }
  const paths: string[] = [];
  const seen = new Map<string, string>();
  for (const item of r.items(list, field)) {
    const raw = r.string(item);
    if (raw === undefined) continue;
    const normal = normalizeArtifactPath(raw);
    if ('problem' in normal) {
      r.error(item.at, item.path, normal.problem);
      continue;
    }
    const identity = artifactIdentity(normal.path);
    const first = seen.get(identity);
    if (first !== undefined) {
      r.warn(item.at, item.path, `"${raw}" is the same path as "${first}"; it is stored once`);
      continue;
    }
    seen.set(identity, raw);
    paths.push(normal.path);
  }
  return paths;
}

function lintStep(r: Reader, field: Field): StepDraft | undefined {
  const map = r.map(field, 'a mapping with a "run" command (- run: make test)');
  if (map === undefined) return undefined;
  const fields = r.entries(map, field.path, STEP_KEYS);
  const runField = given(fields, 'run');
  if (runField === undefined) return void missing(r, fields, map, field.path, 'run', ': the command of the step');
  const run = r.text(runField, false);
  const step: Partial<StepDraft> = { run };
  const name = given(fields, 'name');
  if (name !== undefined) step.name = r.text(name);
  const timeout = given(fields, 'timeout');
  if (timeout !== undefined) step.timeoutMs = r.duration(timeout, MAX_TIMEOUT_MS, '7d');
  const env = given(fields, 'env');
  if (env !== undefined) step.env = lintEnv(r, env);
  return run === undefined ? undefined : (step as StepDraft);
}

function lintSteps(r: Reader, field: Field): StepDraft[] | undefined {
  const list = r.list(field, 'a list of steps, each with a "run" command');
  if (list === undefined) return undefined;
  if (list.items.length === 0) return void r.error(field.at, field.path, 'steps must list at least one step');
  if (list.items.length > MAX_STEPS_PER_JOB) {
    return void r.error(field.at, field.path, `a job may have at most ${MAX_STEPS_PER_JOB} steps, found ${list.items.length}`);
  }
  const steps = r.items(list, field).map((item) => lintStep(r, item));
  return steps.every((s) => s !== undefined) ? steps : undefined;
}

function lintName(r: Reader, field: Field, names: Map<string, string>): string | undefined {
  const name = r.string(field);
  if (name === undefined) return undefined;
  if (name.length === 0 || name.length > MAX_JOB_NAME_LENGTH) {
    return void r.error(field.at, field.path, `name must be 1 to ${MAX_JOB_NAME_LENGTH} characters long, got ${name.length}`);
  }
  if (!JOB_NAME_PATTERN.test(name)) {
    return void r.error(field.at, field.path, `name ${describe(field.node)} may contain only letters, digits, ".", "_" and "-"`);
  }
  const other = names.get(name);
  if (other !== undefined) return void r.error(field.at, field.path, `duplicate job name "${name}": ${other} has it already`);
  names.set(name, field.path.replace(/\.name$/, ''));
  return name;
}

/**
 * What the jobs of one file share while they are linted: the names taken so far (a duplicate is
 * one lookup, so a full file costs linear time) and the schedules already parsed (validating a
 * cron expression costs about a quarter of a millisecond, and a big file repeats a few schedules).
 */
interface FileScope {
  names: Map<string, string>;
  schedules: Map<string, ReturnType<typeof parseSchedule>>;
  /** What the server lets `repository.url` reach; undefined where no server is asked (the CLI). */
  repositories: RepositoryPolicy | undefined;
  /** Most secrets a job may list (KILN_MAX_SECRETS_PER_JOB on a server). */
  maxSecrets: number;
  /** Which literal notification targets the server allows, and whether it has SMTP; undefined where no server is asked. */
  notify: NotifyPolicy | undefined;
}

function lintJob(r: Reader, field: Field, scope: FileScope): JobDraft | undefined {
  const map = r.map(field, 'a mapping with at least "name" and "steps"');
  if (map === undefined) return undefined;
  const errorsBefore = r.errorCount;
  const path = field.path;
  const fields = r.entries(map, path, JOB_KEYS);
  const job: Partial<JobDraft> = { range: [map.range![0], map.range![1]], flow: map.flow === true };
  const opt = (key: (typeof JOB_KEYS)[number]): Field | undefined => given(fields, key);

  const nameField = opt('name');
  if (nameField === undefined) missing(r, fields, map, path, 'name');
  else job.name = lintName(r, nameField, scope.names);

  const schedule = opt('schedule');
  if (schedule !== undefined) {
    const text = r.string(schedule);
    if (text !== undefined && text.trim() === '') r.error(schedule.at, schedule.path, 'schedule is empty; leave it out for a one-off job');
    else if (text !== undefined) {
      let parsed = scope.schedules.get(text);
      if (parsed === undefined) scope.schedules.set(text, (parsed = parseSchedule(text)));
      if (parsed.ok) job.schedule = text.trim();
      else r.error(schedule.at, schedule.path, `schedule: ${parsed.error}`);
    }
  }
  const runOnce = opt('run_once');
  if (runOnce !== undefined) {
    job.runOnce = r.boolean(runOnce);
    if (job.runOnce === true && schedule === undefined) {
      r.warn(runOnce.at, runOnce.path, 'run_once has no effect without a schedule: a job without a schedule runs once anyway');
    }
  }
  const timezone = opt('timezone');
  if (timezone !== undefined) {
    const tz = r.string(timezone);
    if (tz !== undefined && isValidTimezone(tz.trim())) job.timezone = tz.trim();
    else if (tz !== undefined) r.error(timezone.at, timezone.path, `unknown time zone "${tz}": use an IANA name such as Europe/Paris or UTC`);
  }
  const priority = opt('priority');
  if (priority !== undefined) job.priority = lintPriority(r, priority);
  const image = opt('image');
  if (image !== undefined) {
    job.image = r.text(image);
    if (job.image !== undefined && /\s/.test(job.image)) r.error(image.at, image.path, 'image must not contain spaces');
  }
  const repository = opt('repository');
  if (repository !== undefined) job.repository = lintRepository(r, repository, scope.repositories);
  const env = opt('env');
  if (env !== undefined) job.env = lintEnv(r, env);
  const secrets = opt('secrets');
  if (secrets !== undefined) job.secrets = lintSecrets(r, secrets, scope.maxSecrets);
  const timeout = opt('timeout');
  if (timeout !== undefined) job.timeoutMs = r.duration(timeout, MAX_TIMEOUT_MS, '7d');
  const concurrency = opt('concurrency');
  if (concurrency !== undefined) job.concurrency = r.oneOf(concurrency, CONCURRENCY);
  const misfire = opt('misfire');
  if (misfire !== undefined) job.misfire = r.oneOf(misfire, MISFIRE);
  const retries = opt('retries');
  if (retries !== undefined) job.retries = r.integer(retries, 0, 10);
  const network = opt('network');
  if (network !== undefined) job.network = r.oneOf(network, NETWORK);
  const resources = opt('resources');
  if (resources !== undefined) job.resources = lintResources(r, resources);
  const artifacts = opt('artifacts');
  if (artifacts !== undefined) job.artifacts = lintArtifacts(r, artifacts);
  const cache = opt('cache');
  if (cache !== undefined) job.cache = lintCache(r, cache);

  const services = opt('services');
  if (services !== undefined) job.services = lintServices(r, services, lintEnv, job.network);

  const hook = opt('hook');
  if (hook !== undefined) job.hook = lintHook(r, hook);
  const badge = opt('badge');
  if (badge !== undefined) job.badge = r.boolean(badge);
  const notify = opt('notify');
  if (notify !== undefined) job.notify = lintNotify(r, notify, scope.notify);

  const steps = opt('steps');
  if (steps === undefined) missing(r, fields, map, path, 'steps', ': a list of steps, each with a "run" command');
  else job.steps = lintSteps(r, steps);

  return r.errorCount === errorsBefore ? (job as JobDraft) : undefined;
}

/**
 * What a server allows a job file, as lint checks it: the repositories it may clone, the
 * notification targets it may name (KILN_WEBHOOK_ALLOW; absent: public addresses only), and
 * whether it can send mail (KILN_SMTP_URL; absent: no).
 */
export type LintPolicy = RepositoryPolicy & { webhookAllow?: TargetPolicy; smtp?: boolean };

/**
 * Checks the content of a parsed job file against the job file format (docs/design.md#job-file)
 * and collects every problem, not just the first. With `policy`, a repository URL the server does
 * not allow is one of them (docs/design.md#sandboxed-checkout).
 */
export function lintJobFile(file: ParsedJobFile, policy?: LintPolicy, maxSecrets = MAX_SECRETS_PER_JOB): LintResult {
  const r = new Reader(file);
  const jobs: JobDraft[] = [];
  const root = r.field(file.document.contents, '', 'the top level', file.document.range[0]);
  if (!isMap(root.node)) {
    r.error(root.at, '', `the top level must be a mapping with a "jobs" list, got ${describe(root.node)}`);
    return { jobs, diagnostics: r.diagnostics };
  }
  const fields = r.entries(root.node, '', ['jobs']);
  const jobsField = given(fields, 'jobs');
  if (jobsField === undefined) {
    missing(r, fields, root.node, '', 'jobs', ': a list of jobs');
    return { jobs, diagnostics: r.diagnostics };
  }
  const list = r.list(jobsField, 'a list of jobs');
  if (list === undefined) return { jobs, diagnostics: r.diagnostics };
  if (list.items.length === 0) r.error(jobsField.at, 'jobs', 'jobs must list at least one job');
  else if (list.items.length > MAX_JOBS_PER_FILE) {
    r.error(jobsField.at, 'jobs', `a file may hold at most ${MAX_JOBS_PER_FILE} jobs, found ${list.items.length}`);
  } else {
    const notify = policy === undefined ? undefined : { targets: policy.webhookAllow ?? PUBLIC_ONLY, smtp: policy.smtp ?? false };
    const scope: FileScope = { names: new Map(), schedules: new Map(), repositories: policy, maxSecrets, notify };
    for (const item of r.items(list, jobsField)) {
      const job = lintJob(r, item, scope);
      if (job !== undefined) jobs.push(job);
    }
  }
  return { jobs, diagnostics: r.diagnostics };
}
