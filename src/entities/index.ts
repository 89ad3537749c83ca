import { Execution } from './Execution.js';
import { ExecutionStep } from './ExecutionStep.js';
import { Job } from './Job.js';
import { LogChunk } from './LogChunk.js';

export { Execution, ExecutionStep, Job, LogChunk };
export * from './enums.js';
export type { ArtifactRecord } from './Execution.js';

/** Every entity, for the ORM's discovery. */
export const ENTITIES = [Job, Execution, ExecutionStep, LogChunk];
