import { ArtifactError } from '../../runner/artifacts.js';
import { CacheKeyError } from '../../runner/cache/cacheKey.js';
import { RunRefusedError } from '../../runner/containerConfig.js';
import { AbortError } from '../../runner/docker/docker.js';
import { ImageUnavailableError } from '../../runner/docker/images.js';
import { isInfrastructureError } from '../../runner/infrastructure.js';
import { RegistrySecretError } from '../../runner/registryAccess.js';
import { ServiceError } from '../../runner/services/readiness.js';
import { CheckoutError } from '../../runner/workspace.js';
import { MissingSecretsError } from '../../secrets/executionSecrets.js';
import { SecretUnreadableError } from '../../secrets/SecretBox.js';

/**
 * What can end a run, and how. Every way out of a run is one of these; decideEnding
 * (decideEnding.ts) turns them into the run's ending.
 *
 * | what                                        | ending                                                              |
 * |---------------------------------------------|---------------------------------------------------------------------|
 * | every step exits 0                          | recorded SUCCEEDED                                                  |
 * | a step exits non-zero (or is OOM-killed)    | recorded FAILED with its exit code; the job's `retries` apply       |
 * | the run's or a step's `timeout`             | recorded TIMED_OUT; the job's `retries` apply                       |
 * | a cancel request                            | recorded CANCELLED                                                  |
 * | the claim is lost (lease not renewed)       | no outcome: re-queued by the leader once the lease expires          |
 * | the worker shuts down                       | no outcome: handed back as the next attempt (container gone first)  |
 * | the container cannot be confirmed removed   | no outcome: re-queued by the leader once the lease expires          |
 * | the last log lines cannot be stored         | as an infrastructure error (below)                                  |
 * | an error, per RUN_ERRORS                    | FAILED or HANDED_BACK                                               |
 *
 * HANDED_BACK: once its container is confirmed gone (never two attempts at once), the run goes
 * to its next attempt, claimable after a backoff, as long as infrastructureVerdict
 * (infrastructureFailure.ts) allows: an attempt lost while the engine was unreachable never
 * counts, the others count up to MAX_INFRASTRUCTURE_ATTEMPTS; past that the run is recorded
 * FAILED with the error.
 */
export type ErrorEnding =
  /** The build's failure: recorded FAILED with the error's message (the job's `retries` apply). */
  | 'FAILED'
  /** The infrastructure's failure, not the build's: handed to a next attempt (see above). */
  | 'HANDED_BACK'
  /** Thrown because the run was stopped: the stop (timeout, cancel, lost claim) ends the run. */
  | 'STOPPED';

/** One kind of error a run may end with. */
export interface RunError {
  name: string;
  is: (err: unknown) => boolean;
  ends: ErrorEnding;
  why: string;
}

/**
 * The errors that end a run, first match wins; any other error is FAILED. An error thrown after
 * the run was stopped is the stop's doing whatever it is, and is STOPPED.
 */
export const RUN_ERRORS: readonly RunError[] = [
  {
    name: 'AbortError',
    is: (err) => err instanceof AbortError,
    ends: 'STOPPED',
    why: "the run's stop signal fired (an abort with no stop recorded is FAILED)",
  },
  {
    name: 'InfrastructureError, a lost connection (socket codes, SQLSTATE 08 and 57P)',
    is: isInfrastructureError,
    ends: 'HANDED_BACK',
    why: 'the engine or Postgres broke the run, judged by where the error comes from, never by its text',
  },
  { name: 'RunRefusedError', is: (err) => err instanceof RunRefusedError, ends: 'FAILED', why: 'the job asks for more than this server allows' },
  { name: 'MissingSecretsError', is: (err) => err instanceof MissingSecretsError, ends: 'FAILED', why: "a secret the job names is not set for its owner" },
  { name: 'SecretUnreadableError', is: (err) => err instanceof SecretUnreadableError, ends: 'FAILED', why: 'a stored secret cannot be decrypted with this key' },
  { name: 'RegistrySecretError', is: (err) => err instanceof RegistrySecretError, ends: 'FAILED', why: "the owner's registry secret is not credentials" },
  { name: 'ImageUnavailableError', is: (err) => err instanceof ImageUnavailableError, ends: 'FAILED', why: "the job's image is neither present nor pullable" },
  { name: 'CheckoutError', is: (err) => err instanceof CheckoutError, ends: 'FAILED', why: "the job's repository, ref or transport" },
  { name: 'CacheKeyError', is: (err) => err instanceof CacheKeyError, ends: 'FAILED', why: "the cache key's hashFiles names no file of the checkout" },
  { name: 'ServiceError', is: (err) => err instanceof ServiceError, ends: 'FAILED', why: 'a service stopped, or was not ready within its timeout' },
  {
    name: 'ArtifactError',
    is: (err) => err instanceof ArtifactError,
    ends: 'FAILED',
    why: 'an artifact cannot be stored; a step that failed first keeps its own failure',
  },
];

/** How `err`, thrown while a run prepared, ran its steps or collected artifacts, ends it. */
export function errorEnding(err: unknown, runStopped: boolean): ErrorEnding {
  if (runStopped) return 'STOPPED';
  const ends = RUN_ERRORS.find((e) => e.is(err))?.ends ?? 'FAILED';
  return ends === 'STOPPED' ? 'FAILED' : ends;
}
