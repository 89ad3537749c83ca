import { lintJobFile, type JobDraft, type LintPolicy } from './lint.js';
import { parseJobFile } from './parse.js';
import { sortDiagnostics } from './diagnostics.js';
import type { Diagnostic, ExecutionPlan, JobFileResult, JobSpec } from './types.js';

/** The value of every optional key a job file leaves out (or sets to null). */
export const JOB_DEFAULTS = {
  runOnce: false,
  timezone: 'UTC',
  priority: 5,
  timeoutMs: 3_600_000,
  concurrency: 'skip',
  misfire: 'run_once',
  retries: 0,
  network: 'none',
  ref: 'HEAD',
} as const;

/** Beyond this many diagnostics, a file is reported with a count of the rest. */
export const MAX_DIAGNOSTICS = 1000;

/** The job's mapping as written, re-indented so that it is a YAML document of its own. */
function jobSource(source: string, draft: JobDraft): string {
  const [start, end] = draft.range;
  const lineStart = source.lastIndexOf('\n', start - 1) + 1;
  const indent = start - lineStart;
  let stop = end;
  while (stop > start && /\s/.test(source[stop - 1]!)) stop--;
  if (!draft.flow) {
    // A block mapping owns the rest of its last line: keep a trailing comment.
    const newline = source.indexOf('\n', stop);
    stop = newline < 0 ? source.length : newline;
  }
  const lines = source.slice(start, stop).trimEnd().split('\n');
  const dedented = lines.map((line, i) => (i === 0 ? line : line.slice(Math.min(indent, /^ */.exec(line)![0].length))));
  return `${dedented.join('\n')}\n`;
}

function normalize(draft: JobDraft, source: string): JobSpec {
  return {
    name: draft.name,
    schedule: draft.schedule ?? null,
    runOnce: draft.runOnce ?? JOB_DEFAULTS.runOnce,
    timezone: draft.timezone ?? JOB_DEFAULTS.timezone,
    priority: draft.priority ?? JOB_DEFAULTS.priority,
    image: draft.image ?? null,
    repository:
      draft.repository === undefined
        ? null
        : { url: draft.repository.url, ref: draft.repository.ref ?? JOB_DEFAULTS.ref, ...(draft.repository.sshKey ? { sshKey: draft.repository.sshKey } : {}) },
    env: draft.env ?? {},
    secrets: draft.secrets ?? [],
    timeoutMs: draft.timeoutMs ?? JOB_DEFAULTS.timeoutMs,
    concurrency: draft.concurrency ?? JOB_DEFAULTS.concurrency,
    misfire: draft.misfire ?? JOB_DEFAULTS.misfire,
    retries: draft.retries ?? JOB_DEFAULTS.retries,
    network: draft.network ?? JOB_DEFAULTS.network,
    resources: { cpus: draft.resources?.cpus ?? null, memoryBytes: draft.resources?.memoryBytes ?? null },
    artifacts: draft.artifacts ?? [],
    ...(draft.cache ? { cache: draft.cache } : {}),
    steps: draft.steps.map((step) => ({
      name: step.name ?? step.run.trim(),
      run: step.run,
      timeoutMs: step.timeoutMs ?? null,
      env: step.env ?? {},
    })),
    ...(draft.services?.length ? { services: draft.services } : {}),
    ...(draft.hook ? { hook: draft.hook } : {}),
    ...(draft.badge === true ? { badge: true as const } : {}),
    ...(draft.notify?.length ? { notify: draft.notify } : {}),
    source: jobSource(source, draft),
  };
}

/** The diagnostics in order, at most `max`: the last one shown then counts the rest. */
export function capped(diagnostics: readonly Diagnostic[], max = MAX_DIAGNOSTICS): Diagnostic[] {
  const sorted = sortDiagnostics(diagnostics);
  if (sorted.length <= max) return sorted;
  const shown = sorted.slice(0, max - 1);
  const next = sorted[max - 1]!;
  const rest = sorted.length - shown.length;
  return [...shown, { ...next, message: `${rest} more problems from here on are not listed` }];
}

/**
 * What a server allows a job file: where `repository.url` may reach, which private notification
 * targets it may name (KILN_WEBHOOK_ALLOW), and the most secrets a job may list
 * (KILN_MAX_SECRETS_PER_JOB; MAX_SECRETS_PER_JOB when not given). Plain data: it goes to the
 * compile threads as it is.
 */
export type JobFilePolicy = LintPolicy & { maxSecrets?: number };

/**
 * Compiles a YAML job file: parse, lint, then fill in defaults. Gives every job of the file
 * (in file order, each with its own YAML text in `source`), or every diagnostic found.
 * Warnings do not prevent success.
 */
export function compileJobFile(source: string, policy?: JobFilePolicy): JobFileResult {
  const parsed = parseJobFile(source);
  if (!parsed.ok) return { ok: false, diagnostics: capped(parsed.diagnostics) };
  const linted = lintJobFile(parsed.file, policy, policy?.maxSecrets);
  const diagnostics = [...parsed.warnings, ...linted.diagnostics];
  if (diagnostics.some((d) => d.severity === 'error')) return { ok: false, diagnostics: capped(diagnostics) };
  return { ok: true, jobs: linted.jobs.map((draft) => normalize(draft, source)), warnings: capped(diagnostics) };
}

/** What the runner executes for `job`: the server's default image applied, steps numbered from 0. */
export function toExecutionPlan(job: JobSpec, defaults: { image: string }): ExecutionPlan {
  return {
    image: job.image ?? defaults.image,
    workdir: '/workspace',
    env: { ...job.env },
    secrets: [...job.secrets],
    network: job.network,
    resources: { ...job.resources },
    timeoutMs: job.timeoutMs,
    repository: job.repository === null ? null : { ...job.repository },
    artifacts: [...job.artifacts],
    ...(job.cache ? { cache: { key: job.cache.key, restoreKeys: [...job.cache.restoreKeys], paths: [...job.cache.paths] } } : {}),
    steps: job.steps.map((step, index) => ({ index, name: step.name, run: step.run, timeoutMs: step.timeoutMs, env: { ...step.env } })),
    ...(job.services?.length ? { services: job.services.map((s) => ({ ...s, env: { ...s.env } })) } : {}),
  };
}
