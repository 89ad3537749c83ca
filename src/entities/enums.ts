/** Lifecycle of an execution: QUEUED -> RUNNING -> one of the four final states. */
export enum ExecutionStatus {
  QUEUED = 'QUEUED',
  RUNNING = 'RUNNING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  CANCELLED = 'CANCELLED',
  TIMED_OUT = 'TIMED_OUT',
}

const FINAL = [ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED, ExecutionStatus.TIMED_OUT] as const;

/**
 * How an execution ends: one of the four final statuses, which never changes once reached. The
 * enum's values as a string union, so that an ExecutionStatus member and a literal both fit.
 */
export type FinalStatus = `${(typeof FINAL)[number]}`;

/** The final statuses, to test an execution's status against. */
export const FINAL_STATUSES: ReadonlySet<ExecutionStatus> = new Set(FINAL);

/** Why an execution exists. */
export enum ExecutionTrigger {
  SCHEDULE = 'SCHEDULE',
  MANUAL = 'MANUAL',
  SUBMIT = 'SUBMIT',
  RETRY = 'RETRY',
  /** A signed `POST /api/v1/hooks/:job_id` (docs/design.md#webhook-triggers). */
  WEBHOOK = 'WEBHOOK',
}

export enum StepStatus {
  PENDING = 'PENDING',
  RUNNING = 'RUNNING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  SKIPPED = 'SKIPPED',
}

export enum LogStream {
  STDOUT = 'STDOUT',
  STDERR = 'STDERR',
  SYSTEM = 'SYSTEM',
  /** A service container's output (docs/design.md#services), each line prefixed `[name] `. */
  SERVICE = 'SERVICE',
}

/** What became of one scheduled fire time of a job (the tick ledger); defined beside the fire planner. */
export { TickOutcome } from '../schedule/policies.js';
