import { MAX_RECENT_RUNS } from '../services/boardQueries.js';
import { MAX_DELIVERY_TRIES } from '../services/deliveries.js';
import { MAX_DIAGNOSTICS } from '../jobfile/compile.js';
import { MAX_ARTIFACTS_PER_JOB, MAX_JOBS_PER_FILE, MAX_STEPS_PER_JOB } from '../jobfile/lint.js';
import { MAX_JOB_FILE_BYTES } from '../jobfile/parse.js';
import { DEFAULT_MAX_LINE_BYTES } from '../logs/lines.js';
import { DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT } from '../services/executionQueries.js';
import { MAX_NEXT_RUNS } from '../services/jobQueries.js';
import { MAX_LOG_SEARCH_MATCHES } from '../services/logSearch.js';
import { DEFAULT_PAGE, MAX_PAGE } from '../services/paging.js';
import { MAX_PREVIEW } from '../services/schedules.js';

/**
 * How long a list field of the schema can be (docs/design.md#query-cost). Every list field has
 * an entry: test/tenant-cost.test.ts fails on one that has none, so a new list cannot slip in
 * weighing as a single object.
 */
export type ListWeight =
  /** Sized by an argument: its default when absent, its largest accepted value when a variable. */
  | { arg: string; default: number; max: number; connection?: true; pageBytes?: true }
  /**
   * No size argument: the longest the list can be. `oneFile`: its items all come from one job
   * file, so the FILE_LEAVES of all of them together are at most one file, not one file each.
   */
  | { fixed: number; oneFile?: true }
  /** A connection's `edges`: as long as the connection field's argument says. */
  | { edges: true };

const PAGE = { arg: 'first', default: DEFAULT_PAGE, max: MAX_PAGE, connection: true } as const;
const EDGES = { edges: true } as const;

/**
 * Keyed by `Type.field`. `connection` lists hand their size to `edges`; a `pageBytes` list (a
 * page of logs) never holds more than KILN_LOG_PAGE_MAX_BYTES, whatever its length: logsOf cuts it.
 */
export const LIST_WEIGHTS: Readonly<Record<string, ListWeight>> = {
  'Query.jobs': PAGE,
  'Query.executions': PAGE,
  'Job.executions': PAGE,
  'Job.ticks': PAGE,
  'JobConnection.edges': EDGES,
  'ExecutionConnection.edges': EDGES,
  'TickConnection.edges': EDGES,
  'Job.deliveries': PAGE,
  'DeliveryConnection.edges': EDGES,
  'Delivery.tries': { fixed: MAX_DELIVERY_TRIES },
  'Job.recentRuns': { arg: 'count', default: 20, max: MAX_RECENT_RUNS },
  'Job.nextRuns': { arg: 'count', default: 5, max: MAX_NEXT_RUNS },
  'Job.nextFires': { arg: 'count', default: 5, max: MAX_NEXT_RUNS },
  'Query.schedulePreview': { arg: 'count', default: 5, max: MAX_PREVIEW },
  'Execution.logs': { arg: 'limit', default: DEFAULT_LOG_LIMIT, max: MAX_LOG_LIMIT, pageBytes: true },
  // Sized by logSearch's `first`, which the rule cannot see from the list itself: its largest.
  'LogSearchResult.matches': { fixed: MAX_LOG_SEARCH_MATCHES },
  'Execution.steps': { fixed: MAX_STEPS_PER_JOB },
  // One artifact per path the job lists, at most MAX_ARTIFACTS_PER_JOB (a directory is one archive).
  'Execution.artifacts': { fixed: MAX_ARTIFACTS_PER_JOB },
  // KILN_MAX_SECRETS_PER_OWNER is 100 by default (docs/design.md#quotas); an operator may raise
  // it, and the names of ten times the default weigh little.
  'Query.secrets': { fixed: 1000 },
  'SubmitJobPayload.jobs': { fixed: MAX_JOBS_PER_FILE, oneFile: true },
  'ValidationResult.diagnostics': { fixed: MAX_DIAGNOSTICS },
};

/**
 * Scalars cut from a job file's text (a job's own YAML, its name, schedule, image, step names):
 * under a `oneFile` list of n items each weighs 1/n of its LEAF_BYTES, since n jobs of one file
 * hold at most that file between them.
 */
export const FILE_LEAVES: ReadonlySet<string> = new Set(['Job.spec', 'Job.name', 'Job.schedule', 'Job.timezone', 'Job.image', 'Step.name']);

/** Bytes of a scalar in the JSON answer, key included: ids, numbers, dates, enums, short names. */
export const DEFAULT_LEAF_BYTES = 64;
/** Bytes of an object's braces and key, besides its fields. */
export const OBJECT_BYTES = 16;

/** Scalars that can be longer than DEFAULT_LEAF_BYTES: their longest, or an estimate where said. */
export const LEAF_BYTES: Readonly<Record<string, number>> = {
  'LogChunk.text': DEFAULT_MAX_LINE_BYTES + DEFAULT_LEAF_BYTES,
  'Job.spec': MAX_JOB_FILE_BYTES,
  // A step's name defaults to its command, and all of a job's commands are in its file: the
  // names of one execution's MAX_STEPS_PER_JOB steps together are at most one file.
  'Step.name': Math.ceil(MAX_JOB_FILE_BYTES / MAX_STEPS_PER_JOB),
  'Job.name': 128,
  'Job.schedule': 256,
  'Job.timezone': 128,
  'Job.image': 512,
  // Estimates: texts Kiln writes (a reason, a URL, a path), not user data.
  'Execution.error': 4096,
  'Execution.logUrl': 2048,
  'Artifact.url': 2048,
  'Artifact.path': 1024,
  'Diagnostic.message': 1024,
  'Diagnostic.path': 256,
  'Secret.name': 320,
  'User.id': 320,
  // A notify URL has at most 2048 characters; ten addresses about as much. Errors are capped at
  // 500 characters (up to 4 bytes each).
  'Delivery.target': 2048 + DEFAULT_LEAF_BYTES,
  'Delivery.lastError': 2000 + DEFAULT_LEAF_BYTES,
  'DeliveryAttempt.error': 2000 + DEFAULT_LEAF_BYTES,
};
