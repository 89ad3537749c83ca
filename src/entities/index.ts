import { Execution } from './Execution.js';
import { ExecutionStep } from './ExecutionStep.js';
import { Job } from './Job.js';
import { LogChunk } from './LogChunk.js';
import { Secret } from './Secret.js';
import { Tick } from './Tick.js';

export { Execution, ExecutionStep, Job, LogChunk, Secret, Tick };
export * from './enums.js';
export type { ArtifactRecord } from './Execution.js';

/** Every entity, for the ORM's discovery. */
export const ENTITIES = [Job, Execution, ExecutionStep, LogChunk, Tick, Secret];
