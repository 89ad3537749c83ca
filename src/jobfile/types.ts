/**
 * Plain data produced by the job-file pipeline (parse -> lint -> compile).
 * Nothing here knows about Postgres, Docker or GraphQL.
 */

import type { ConcurrencyPolicy, MisfirePolicy } from '../schedule/policies.js';
import type { ServiceSpec } from './serviceSpec.js';

/** One problem found in a job file. Lines and columns are 1-based. */
export interface Diagnostic {
  line: number;
  column: number;
  /** Where in the document, e.g. `jobs[0].steps[1].run`; `` for the document itself. */
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

export type { ConcurrencyPolicy, MisfirePolicy };
export type NetworkMode = 'none' | 'bridge';

/** One step of a job, normalized. */
export interface StepSpec {
  /** Defaults to the command itself when the file gives no name. */
  name: string;
  run: string;
  /** null = bounded only by the job's timeout. */
  timeoutMs: number | null;
  env: Record<string, string>;
}

/** `cache:` of a job (docs/design.md#build-caches): templates as written, paths normalised. */
export interface CacheSpec {
  key: string;
  restoreKeys: string[];
  paths: string[];
}

/** `hook:` of a job (docs/design.md#webhook-triggers): the stored secret that signs its deliveries. */
export interface HookSpec {
  secret: string;
}

/** What a `notify:` rule listens for (docs/design.md#notifications). */
export type NotifyEvent = 'failed' | 'first_failure' | 'fixed' | 'timed_out' | 'missed' | 'running_longer';

/**
 * How messages phrase each event, one row per event so that a new one cannot be left unworded:
 * `slack` follows the job's name in a sentence (`*Nightly* started failing`), `mail` follows it
 * after a colon in the subject (`[Kiln] Nightly: failed (first failure)`).
 */
export const NOTIFY_EVENT_WORDS: Readonly<Record<NotifyEvent, { slack: string; mail: string }>> = {
  failed: { slack: 'failed', mail: 'failed' },
  first_failure: { slack: 'started failing', mail: 'failed (first failure)' },
  fixed: { slack: 'is fixed', mail: 'fixed' },
  timed_out: { slack: 'timed out', mail: 'timed out' },
  missed: { slack: 'missed its schedule', mail: 'missed' },
  running_longer: { slack: 'is running longer than expected', mail: 'running longer than expected' },
};

/** The channels a rule may name. */
export type NotifyChannelName = 'webhook' | 'slack' | 'email';

/** One rule of `notify:`: the events, and one or more channels (docs/design.md#notifications). */
export interface NotifyRule {
  on: NotifyEvent[];
  /** Present exactly when `on` has running_longer. */
  longerThanMs?: number;
  /** `secret`: the name of the owner's stored secret keying the body's HMAC-SHA256. */
  webhook?: { url: string; secret?: string };
  /** Exactly one of the two: the incoming-webhook URL, or the name of the secret holding it. */
  slack?: { url?: string; secret?: string };
  /** 1..10 addresses. */
  email?: string[];
}

/** One job of a file, validated and normalized with every default filled in. */
export interface JobSpec {
  name: string;
  /** The schedule as written (trimmed); null = one-off, run as soon as possible. */
  schedule: string | null;
  runOnce: boolean;
  /** IANA zone name; `UTC` by default. */
  timezone: string;
  /** 0..10, higher runs first; `low`=2, `normal`=5, `high`=8. */
  priority: number;
  /** null = the server's default image. */
  image: string | null;
  /** `sshKey`: the owner's secret holding the deploy key of an ssh URL (absent: none). */
  repository: { url: string; ref: string; sshKey?: string } | null;
  env: Record<string, string>;
  secrets: string[];
  timeoutMs: number;
  concurrency: ConcurrencyPolicy;
  misfire: MisfirePolicy;
  retries: number;
  network: NetworkMode;
  resources: { cpus: number | null; memoryBytes: number | null };
  artifacts: string[];
  /** Absent: no cache. */
  cache?: CacheSpec;
  steps: StepSpec[];
  /** Containers started beside the build (`services:`; docs/design.md#services); absent: none. */
  services?: ServiceSpec[];
  /** Absent: `POST /api/v1/hooks/:job_id` refuses every delivery for this job. */
  hook?: HookSpec;
  /** `badge: true`: GET /api/v1/badges/:job_id.svg answers for it (docs/design.md#badges); absent: off. */
  badge?: true;
  /** `notify:` rules (docs/design.md#notifications); absent: the job notifies nobody. */
  notify?: NotifyRule[];
  /** This job's own YAML text, as the user wrote it (for `Job.spec`). */
  source: string;
}

/** Outcome of checking a whole file: either every job, or every diagnostic. */
export type JobFileResult =
  | { ok: true; jobs: JobSpec[]; warnings: Diagnostic[] }
  | { ok: false; diagnostics: Diagnostic[] };

/** What the runner executes: a job with the server's defaults applied. */
export interface ExecutionPlan {
  image: string;
  workdir: string;
  env: Record<string, string>;
  secrets: string[];
  network: NetworkMode;
  resources: { cpus: number | null; memoryBytes: number | null };
  timeoutMs: number;
  /** `sshKey`: the owner's secret holding the deploy key of an ssh URL (absent: none). */
  repository: { url: string; ref: string; sshKey?: string } | null;
  artifacts: string[];
  /** Absent (as in plans stored before caches existed): no cache. */
  cache?: CacheSpec;
  steps: Array<{ index: number; name: string; run: string; timeoutMs: number | null; env: Record<string, string> }>;
  /** Absent in plans stored before services existed: none. */
  services?: ServiceSpec[];
}
