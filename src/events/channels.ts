import { ExecutionStatus, FINAL_STATUSES, StepStatus } from '../entities/enums.js';
import { JOB_CHANNEL, JobChange, type JobChangeEntry } from '../executions/signals.js';

/**
 * The NOTIFY channels API processes listen on. The first two are raised by the triggers of
 * migrations/Migration20261127030000_events.ts (the payload shapes below are that migration's
 * `json_build_object` calls); `job` by the job mutations themselves (executions/signals.ts
 * notifyJobsChanged), in the transaction that makes the change.
 */
export const CHANNELS = {
  executionState: 'kiln_execution_state',
  log: 'kiln_log',
  job: JOB_CHANNEL,
  /**
   * A subscription's start mark (events/Interest.ts): notified in the transaction that registers
   * its interest, so the events committed before it arrive before the mark and are not its own.
   */
  start: 'kiln_event_start',
} as const;

/** Some of one owner's jobs changed (submitted, paused, resumed or deleted) in one transaction. */
export interface JobEvent {
  /** ownerKey(owner): the owner's hash, compared with each watcher's. */
  ownerKey: string;
  jobs: JobChangeEntry[];
}

/** One step as the state event carries it: its status and exit code. */
export interface StepState {
  status: StepStatus;
  exitCode: number | null;
}

/**
 * The state of one execution as of the commit of a transaction that changed its status, its
 * attempt or one of its steps' statuses.
 */
export interface ExecutionStateEvent {
  executionId: string;
  jobId: string;
  /** The owner, or null when it is too long for the payload (look it up). */
  owner: string | null;
  status: ExecutionStatus;
  attempt: number;
  exitCode: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Highest stored log seq at that commit; final once `status` is. */
  lastSeq: number;
  /** Every step in index order. */
  steps: StepState[];
}

/** New log chunks of one execution were stored, up to `lastSeq`. */
export interface LogEvent {
  executionId: string;
  lastSeq: number;
}

const date = (v: unknown): Date | null => (typeof v === 'string' ? new Date(v) : null);

/** Parses a `kiln_execution_state` payload; throws on a malformed one. */
export function parseExecutionState(payload: string): ExecutionStateEvent {
  const o = JSON.parse(payload) as Record<string, unknown>;
  if (typeof o.executionId !== 'string' || typeof o.status !== 'string' || !Array.isArray(o.steps)) {
    throw new Error(`malformed ${CHANNELS.executionState} payload`);
  }
  return {
    executionId: o.executionId,
    jobId: String(o.jobId),
    owner: typeof o.owner === 'string' ? o.owner : null,
    status: o.status as ExecutionStatus,
    attempt: Number(o.attempt),
    exitCode: typeof o.exitCode === 'number' ? o.exitCode : null,
    startedAt: date(o.startedAt),
    finishedAt: date(o.finishedAt),
    lastSeq: Number(o.lastSeq ?? 0),
    steps: (o.steps as Array<[string, number | null]>).map(([status, exitCode]) => ({ status: status as StepStatus, exitCode })),
  };
}

/** Parses a `kiln_log` payload; throws on a malformed one. */
export function parseLogEvent(payload: string): LogEvent {
  const o = JSON.parse(payload) as Record<string, unknown>;
  if (typeof o.executionId !== 'string' || typeof o.lastSeq !== 'number') throw new Error(`malformed ${CHANNELS.log} payload`);
  return { executionId: o.executionId, lastSeq: o.lastSeq };
}

const JOB_CHANGES: ReadonlySet<string> = new Set(Object.values(JobChange));

/** Parses a `kiln_job` payload; throws on a malformed one. */
export function parseJobEvent(payload: string): JobEvent {
  const o = JSON.parse(payload) as Record<string, unknown>;
  const valid = (j: unknown): j is [string, JobChange, boolean] =>
    Array.isArray(j) && typeof j[0] === 'string' && JOB_CHANGES.has(j[1] as string) && typeof j[2] === 'boolean';
  if (typeof o.owner !== 'string' || !Array.isArray(o.jobs) || !o.jobs.every(valid)) throw new Error(`malformed ${CHANNELS.job} payload`);
  return { ownerKey: o.owner, jobs: o.jobs.map(([id, change, paused]) => ({ id, change, paused })) };
}

const SETTLED_STEPS: ReadonlySet<StepStatus> = new Set([StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED]);

/**
 * True once nothing about the execution will change again: a final status and no step still
 * pending or running. (The runner marks the unreached steps SKIPPED in the same transaction as
 * the final status, so a settled state arrives in one event.)
 */
export function isSettled(state: { status: ExecutionStatus; steps: ReadonlyArray<{ status: StepStatus }> }): boolean {
  return FINAL_STATUSES.has(state.status) && state.steps.every((s) => SETTLED_STEPS.has(s.status));
}
