import type { Outcome } from '../../executions/finish.js';
import type { InfrastructureVerdict } from './infrastructureFailure.js';
import type { StopReason } from './RunRegistry.js';

/** Why a run was stopped before its steps ended by themselves. */
export interface Stop {
  reason: StopReason;
  /** Shown as the run's last line and in its `error`. */
  message: string;
}

/**
 * The run's container: never prepared, running (processes may be left in it), confirmed gone,
 * or stuck (removal gave up: it must be assumed to still run).
 */
export type ContainerState = 'none' | 'running' | 'gone' | 'stuck';

/** What a run knows about itself when it is about to end. */
export interface RunFacts {
  container: ContainerState;
  /** Every step (and the artifacts) ran to its end, whatever the exit codes. */
  stepsEnded: boolean;
  /** The first stop, if one came before the last lines were stored (a later one changes nothing). */
  stop: Stop | null;
  /** What the build came to by itself: SUCCEEDED, or FAILED with a step's exit code or an error. */
  result: Outcome;
  /** Why the infrastructure broke the run (see RUN_ERRORS), if it did. */
  infraError: string | null;
  /** Once stored (or not): the outcome written as the last line, and why the lines were not stored. */
  lastLines: { outcome: Outcome; unstored: string | null } | null;
  /** Once judged: whether an infrastructure failure goes to a next attempt (see infrastructureVerdict). */
  verdict: InfrastructureVerdict | null;
}

/** How a run ends. */
export type Ending =
  /** The outcome is written (fenced by the claim); the container, if `removeContainerAfter`, goes after. */
  | { kind: 'record'; outcome: Outcome; removeContainerAfter: boolean }
  /**
   * To the next attempt, claimable after `delayMs`: the infrastructure broke the run, and its
   * container is confirmed gone. `engineDown`: the attempt does not count against the limit.
   */
  | { kind: 'handBack'; reason: string; delayMs: number; engineDown: boolean }
  /**
   * No outcome: the claim is another attempt's already, or the container may still run. The lease
   * expires and the leader re-queues the execution (or a shutdown hands back what it stopped).
   */
  | { kind: 'abandon'; why: string };

/**
 * What the ending waits for: the container's removal (processes left in a stopped or broken run
 * die before anything is written; a hand-back needs it gone), the last lines' storing (lines
 * Postgres cannot take make the run the infrastructure's failure), or the verdict on an
 * infrastructure failure (it reads the execution's earlier attempts and asks the engine gate).
 */
export type Prerequisite = { kind: 'removeContainer' } | { kind: 'storeLastLines'; outcome: Outcome } | { kind: 'judgeInfrastructure' };

const STUCK = 'its container could not be confirmed removed';

/**
 * How a run ends, or what must happen before that can be decided: the run does it, and asks
 * again with what it learned. Each prerequisite is asked for at most once (the container is then
 * gone or stuck; the lines stored or not; the verdict given), so a run asks at most four times.
 *
 * Invariant (never two attempts at once): a hand-back is decided only with the container
 * confirmed gone (or never prepared); a container that may still run makes the ending `abandon`.
 */
export function decideEnding(f: RunFacts): Ending | Prerequisite {
  if (f.lastLines === null) {
    // Steps that ended by themselves leave an idle container: it goes after the outcome, so the
    // outcome does not wait for the engine. Anything else may still have processes running.
    const endedByItself = f.stepsEnded && f.stop === null;
    if (f.container === 'running' && !endedByItself) return { kind: 'removeContainer' };
    if (f.stop?.reason === 'LOST') return f.container === 'running' ? { kind: 'removeContainer' } : { kind: 'abandon', why: f.stop.message };
    if (f.container === 'stuck') return { kind: 'abandon', why: STUCK };
    return { kind: 'storeLastLines', outcome: outcomeOf(f) };
  }
  const record: Ending = { kind: 'record', outcome: f.lastLines.outcome, removeContainerAfter: f.container === 'running' };
  const infra = f.stop === null ? (f.infraError ?? unstoredLines(f.lastLines.unstored)) : null;
  if (infra === null) return record;
  if (f.verdict === null) return { kind: 'judgeInfrastructure' };
  if (f.verdict.action === 'fail') return record;
  if (f.container === 'running') return { kind: 'removeContainer' };
  if (f.container === 'stuck') return { kind: 'abandon', why: STUCK };
  const { engineDown, delayMs } = f.verdict;
  const counted = engineDown ? 'the engine was not reachable: this attempt does not count; ' : '';
  return { kind: 'handBack', reason: `infrastructure error: ${infra} (${counted}next attempt in ${delayMs / 1000} s)`, delayMs, engineDown };
}

/** The outcome a run that is not abandoned writes: its stop's, or else the build's own. */
function outcomeOf(f: RunFacts): Outcome {
  if (f.stop !== null && f.stop.reason !== 'LOST') return { status: f.stop.reason, exitCode: null, error: f.stop.message };
  return f.result;
}

function unstoredLines(why: string | null): string | null {
  return why === null ? null : `log lines could not be stored: ${why}`;
}
