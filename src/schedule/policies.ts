/**
 * The scheduling vocabulary: the policies a job file names and what the fire planner decides.
 * Defined here, in the pure scheduling layer, so that the planner needs nothing above it; the job
 * file's types (jobfile/types.ts) and the entities (entities/enums.ts) re-export them.
 */

/** What a new run does when the job already has one queued or running (see decideOverlap). */
export type ConcurrencyPolicy = 'skip' | 'queue' | 'replace';

/** What becomes of fire times reached too late (the scheduler was down or behind; see planFires). */
export type MisfirePolicy = 'skip' | 'run_once' | 'run_all';

/** What became of one scheduled fire time of a job (the tick ledger). */
export enum TickOutcome {
  FIRED = 'FIRED',
  SKIPPED_OVERLAP = 'SKIPPED_OVERLAP',
  MISSED = 'MISSED',
  PAUSED = 'PAUSED',
}
