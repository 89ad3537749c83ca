import { describe, expect, it } from 'vitest';
import type { Outcome } from '../src/executions/finish.js';
import { ArtifactError } from '../src/runner/artifacts.js';
import { RunRefusedError } from '../src/runner/containerConfig.js';
import { AbortError } from '../src/runner/docker/docker.js';
import { ImageUnavailableError } from '../src/runner/docker/images.js';
import { InfrastructureError } from '../src/runner/infrastructure.js';
import { CheckoutError } from '../src/runner/workspace.js';
import { MissingSecretsError } from '../src/secrets/executionSecrets.js';
import { SecretUnreadableError } from '../src/secrets/SecretBox.js';
import { decideEnding, type Ending, type Prerequisite, type RunFacts } from '../src/worker/run/decideEnding.js';
import { errorEnding } from '../src/worker/run/endings.js';
import { infrastructureVerdict, MAX_INFRASTRUCTURE_ATTEMPTS, type InfrastructureVerdict } from '../src/worker/run/infrastructureFailure.js';

const SUCCEEDED: Outcome = { status: 'SUCCEEDED', exitCode: 0, error: null };
const STEP_FAILED: Outcome = { status: 'FAILED', exitCode: 3, error: 'step "b" exited with code 3' };
const ENGINE_LOST: Outcome = { status: 'FAILED', exitCode: null, error: 'the container stopped while a step ran' };
const TIMEOUT = { reason: 'TIMED_OUT', message: 'timed out after 3000 ms' } as const;
const CANCEL = { reason: 'CANCELLED', message: 'cancelled' } as const;
const LOST = { reason: 'LOST', message: 're-queued, finished or deleted elsewhere' } as const;
const STOPPED_CONTAINER = { kind: 'abandon', why: 'its container could not be confirmed removed' } as const;
/** The verdicts on an infrastructure failure (see infrastructureVerdict, tested in engine-gate.test.ts). */
const FIRST_ATTEMPT = infrastructureVerdict({ attempt: 1, engineDownBefore: 0, engineDown: false });
const LAST_ATTEMPT = infrastructureVerdict({ attempt: MAX_INFRASTRUCTURE_ATTEMPTS, engineDownBefore: 0, engineDown: false });
const ENGINE_DOWN = infrastructureVerdict({ attempt: MAX_INFRASTRUCTURE_ATTEMPTS + 1, engineDownBefore: MAX_INFRASTRUCTURE_ATTEMPTS, engineDown: true });
const handBack = (why: string, engineDown = false) => ({
  kind: 'handBack',
  reason: `infrastructure error: ${why} (${engineDown ? 'the engine was not reachable: this attempt does not count; ' : ''}next attempt in 1 s)`,
  delayMs: 1000,
  engineDown,
}) as const;

/** A run whose steps all succeeded, at the moment it starts to settle. */
function facts(over: Partial<RunFacts> = {}): RunFacts {
  return { container: 'running', stepsEnded: true, stop: null, result: SUCCEEDED, infraError: null, lastLines: null, verdict: null, ...over };
}

/** Same, with the last lines stored (`outcome` as written). */
function stored(outcome: Outcome, over: Partial<RunFacts> = {}, unstored: string | null = null): RunFacts {
  return facts({ lastLines: { outcome, unstored }, ...over });
}

describe('decideEnding', () => {
  it.each<[string, RunFacts, Ending | Prerequisite]>([
    // Steps that ended by themselves: the outcome first, the idle container after.
    ['success: the last lines go first', facts(), { kind: 'storeLastLines', outcome: SUCCEEDED }],
    ['success, lines stored: recorded, the container removed after', stored(SUCCEEDED), { kind: 'record', outcome: SUCCEEDED, removeContainerAfter: true }],
    ['step failure: the last lines go first', facts({ result: STEP_FAILED }), { kind: 'storeLastLines', outcome: STEP_FAILED }],
    ['step failure, lines stored: recorded FAILED', stored(STEP_FAILED, { result: STEP_FAILED }), { kind: 'record', outcome: STEP_FAILED, removeContainerAfter: true }],
    // A stopped or broken run may still have processes: they die before anything is written.
    ['timeout: the container goes first', facts({ stepsEnded: false, stop: TIMEOUT }), { kind: 'removeContainer' }],
    [
      'timeout, container gone: the stop is the outcome',
      facts({ stepsEnded: false, stop: TIMEOUT, container: 'gone' }),
      { kind: 'storeLastLines', outcome: { status: 'TIMED_OUT', exitCode: null, error: TIMEOUT.message } },
    ],
    [
      'timeout, lines stored: recorded TIMED_OUT, nothing left to remove',
      stored({ status: 'TIMED_OUT', exitCode: null, error: TIMEOUT.message }, { stepsEnded: false, stop: TIMEOUT, container: 'gone' }),
      { kind: 'record', outcome: { status: 'TIMED_OUT', exitCode: null, error: TIMEOUT.message }, removeContainerAfter: false },
    ],
    ['cancel: the container goes first', facts({ stepsEnded: false, stop: CANCEL }), { kind: 'removeContainer' }],
    [
      'cancel, container gone: CANCELLED',
      facts({ stepsEnded: false, stop: CANCEL, container: 'gone' }),
      { kind: 'storeLastLines', outcome: { status: 'CANCELLED', exitCode: null, error: 'cancelled' } },
    ],
    [
      'cancel of a run that never got a container',
      facts({ stepsEnded: false, stop: CANCEL, container: 'none' }),
      { kind: 'storeLastLines', outcome: { status: 'CANCELLED', exitCode: null, error: 'cancelled' } },
    ],
    // A lost claim is the next attempt's: nothing is written.
    ['lost claim: the container goes first', facts({ stepsEnded: false, stop: LOST }), { kind: 'removeContainer' }],
    ['lost claim, container gone: abandoned', facts({ stepsEnded: false, stop: LOST, container: 'gone' }), { kind: 'abandon', why: LOST.message }],
    ['lost claim, container stuck: abandoned all the same', facts({ stepsEnded: false, stop: LOST, container: 'stuck' }), { kind: 'abandon', why: LOST.message }],
    ['lost claim just after the steps ended: its container still goes first', facts({ stop: LOST }), { kind: 'removeContainer' }],
    ['lost claim just after the steps ended, container gone: abandoned', facts({ stop: LOST, container: 'gone' }), { kind: 'abandon', why: LOST.message }],
    ['lost claim before a container existed: abandoned', facts({ stepsEnded: false, stop: LOST, container: 'none' }), { kind: 'abandon', why: LOST.message }],
    // The infrastructure's failure: to the next attempt, with the container confirmed gone.
    ['infra error: the container goes first', facts({ stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error }), { kind: 'removeContainer' }],
    [
      'infra error, container gone: the error is logged as the last line',
      facts({ stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'gone' }),
      { kind: 'storeLastLines', outcome: ENGINE_LOST },
    ],
    [
      'infra error, lines stored: the verdict is asked for',
      stored(ENGINE_LOST, { stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'gone' }),
      { kind: 'judgeInfrastructure' },
    ],
    [
      'infra error under the attempt limit: handed back, with backoff',
      stored(ENGINE_LOST, { stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'gone', verdict: FIRST_ATTEMPT }),
      handBack(ENGINE_LOST.error!),
    ],
    [
      'infra error at the attempt limit: recorded FAILED',
      stored(ENGINE_LOST, { stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'gone', verdict: LAST_ATTEMPT }),
      { kind: 'record', outcome: ENGINE_LOST, removeContainerAfter: false },
    ],
    [
      'infra error while the engine was unreachable, past the limit: handed back, not counted',
      stored(ENGINE_LOST, { stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'gone', verdict: ENGINE_DOWN }),
      handBack(ENGINE_LOST.error!, true),
    ],
    [
      'infra error of a run that never got a container: handed back',
      stored(ENGINE_LOST, { stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'none', verdict: FIRST_ATTEMPT }),
      handBack(ENGINE_LOST.error!),
    ],
    ['container not confirmed gone: abandoned', facts({ stepsEnded: false, stop: TIMEOUT, container: 'stuck' }), STOPPED_CONTAINER],
    [
      'infra error, container not confirmed gone: abandoned, never handed back',
      facts({ stepsEnded: false, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'stuck' }),
      STOPPED_CONTAINER,
    ],
    // Last lines Postgres could not take: the infrastructure's failure.
    ['success, lines not stored: the verdict is asked for', stored(SUCCEEDED, {}, 'Connection terminated'), { kind: 'judgeInfrastructure' }],
    [
      'success, lines not stored, to be handed back: the idle container goes first',
      stored(SUCCEEDED, { verdict: FIRST_ATTEMPT }, 'Connection terminated'),
      { kind: 'removeContainer' },
    ],
    [
      'success, lines not stored, container gone: handed back',
      stored(SUCCEEDED, { container: 'gone', verdict: FIRST_ATTEMPT }, 'Connection terminated'),
      handBack('log lines could not be stored: Connection terminated'),
    ],
    [
      'success, lines not stored, container stuck: abandoned',
      stored(SUCCEEDED, { container: 'stuck', verdict: FIRST_ATTEMPT }, 'Connection terminated'),
      STOPPED_CONTAINER,
    ],
    [
      'success, lines not stored, at the attempt limit: the outcome is recorded',
      stored(SUCCEEDED, { verdict: LAST_ATTEMPT }, 'Connection terminated'),
      { kind: 'record', outcome: SUCCEEDED, removeContainerAfter: true },
    ],
    [
      'timeout, lines not stored: recorded TIMED_OUT (a stopped run is never handed back)',
      stored({ status: 'TIMED_OUT', exitCode: null, error: TIMEOUT.message }, { stepsEnded: false, stop: TIMEOUT, container: 'gone' }, 'Connection terminated'),
      { kind: 'record', outcome: { status: 'TIMED_OUT', exitCode: null, error: TIMEOUT.message }, removeContainerAfter: false },
    ],
    [
      'cancel while an infra-broken run settled, before its last lines: CANCELLED',
      facts({ stepsEnded: false, stop: CANCEL, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'gone' }),
      { kind: 'storeLastLines', outcome: { status: 'CANCELLED', exitCode: null, error: 'cancelled' } },
    ],
    [
      'a stop while the last lines were stored keeps the outcome written, and is not handed back',
      stored(ENGINE_LOST, { stepsEnded: false, stop: CANCEL, result: ENGINE_LOST, infraError: ENGINE_LOST.error, container: 'gone' }),
      { kind: 'record', outcome: ENGINE_LOST, removeContainerAfter: false },
    ],
  ])('%s', (_title, given, expected) => {
    expect(decideEnding(given)).toEqual(expected);
  });
});

/** What the engine and Postgres answer while a run settles. */
interface World {
  removal: 'gone' | 'stuck';
  unstored: string | null;
  verdict: InfrastructureVerdict;
}

/** Settles a run as ExecutionRun.settle does, with `world`'s answers: the steps taken and the ending. */
function settle(start: RunFacts, world: World): { steps: string[]; ending: Ending } {
  let f = start;
  const steps: string[] = [];
  for (let i = 0; i < 6; i++) {
    const next = decideEnding(f);
    if (next.kind === 'removeContainer') f = { ...f, container: world.removal };
    else if (next.kind === 'storeLastLines') f = { ...f, lastLines: { outcome: next.outcome, unstored: world.unstored } };
    else if (next.kind === 'judgeInfrastructure') f = { ...f, verdict: world.verdict };
    else return { steps, ending: next };
    steps.push(next.kind);
  }
  throw new Error('decideEnding asked for the same thing twice');
}

describe('settling a run, step by step', () => {
  const ok: World = { removal: 'gone', unstored: null, verdict: FIRST_ATTEMPT };
  it.each<[string, RunFacts, World, string[], Ending['kind']]>([
    ['success', facts(), ok, ['storeLastLines'], 'record'],
    ['step failure', facts({ result: STEP_FAILED }), ok, ['storeLastLines'], 'record'],
    ['timeout', facts({ stepsEnded: false, stop: TIMEOUT }), ok, ['removeContainer', 'storeLastLines'], 'record'],
    ['cancel', facts({ stepsEnded: false, stop: CANCEL }), ok, ['removeContainer', 'storeLastLines'], 'record'],
    ['lost claim', facts({ stepsEnded: false, stop: LOST }), ok, ['removeContainer'], 'abandon'],
    ['lost claim just after the steps ended', facts({ stop: LOST }), ok, ['removeContainer'], 'abandon'],
    ['infra error under the limit', facts({ stepsEnded: false, result: ENGINE_LOST, infraError: 'x' }), ok, ['removeContainer', 'storeLastLines', 'judgeInfrastructure'], 'handBack'],
    [
      'infra error at the limit',
      facts({ stepsEnded: false, result: ENGINE_LOST, infraError: 'x' }),
      { ...ok, verdict: LAST_ATTEMPT },
      ['removeContainer', 'storeLastLines', 'judgeInfrastructure'],
      'record',
    ],
    ['infra error, container not confirmed gone', facts({ stepsEnded: false, infraError: 'x' }), { ...ok, removal: 'stuck' }, ['removeContainer'], 'abandon'],
    ['timeout, container not confirmed gone', facts({ stepsEnded: false, stop: TIMEOUT }), { ...ok, removal: 'stuck' }, ['removeContainer'], 'abandon'],
    ['lines not stored', facts(), { ...ok, unstored: 'Connection terminated' }, ['storeLastLines', 'judgeInfrastructure', 'removeContainer'], 'handBack'],
    [
      'lines not stored, container stuck',
      facts(),
      { ...ok, removal: 'stuck', unstored: 'Connection terminated' },
      ['storeLastLines', 'judgeInfrastructure', 'removeContainer'],
      'abandon',
    ],
  ])('%s', (_title, start, world, steps, ending) => {
    const settled = settle(start, world);
    expect(settled.steps).toEqual(steps);
    expect(settled.ending.kind).toBe(ending);
    // Never two attempts at once: a hand-back only with the container confirmed gone.
    if (ending === 'handBack') expect(world.removal).toBe('gone');
  });
});

describe('errorEnding: what each error thrown by a run comes to', () => {
  const refused = new RunRefusedError('resources.cpus 64 exceeds this server\'s maximum of 4 (KILN_MAX_CPUS)');
  it.each<[string, unknown, ReturnType<typeof errorEnding>]>([
    ['InfrastructureError', new InfrastructureError('the container stopped while a step ran'), 'HANDED_BACK'],
    ['a refused Docker socket', Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' }), 'HANDED_BACK'],
    ['Postgres shutting down (57P01)', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }), 'HANDED_BACK'],
    ['RunRefusedError', refused, 'FAILED'],
    ['MissingSecretsError', new MissingSecretsError(['TOKEN']), 'FAILED'],
    ['SecretUnreadableError', new SecretUnreadableError('TOKEN'), 'FAILED'],
    ['ImageUnavailableError', new ImageUnavailableError('nope:latest', 'not found'), 'FAILED'],
    ['CheckoutError, even when it mentions a lost connection', new CheckoutError('cannot fetch: ECONNRESET'), 'FAILED'],
    ['ArtifactError', new ArtifactError('artifact "out" could not be stored'), 'FAILED'],
    ['any other error', new Error('something else'), 'FAILED'],
    ['AbortError with no stop recorded', new AbortError(), 'FAILED'],
  ])('%s', (_title, err, ending) => {
    expect(errorEnding(err, false)).toBe(ending);
  });

  it.each([new AbortError(), new InfrastructureError('engine gone'), new Error('git killed')])('leaves a stopped run to its stop: %s', (err) => {
    expect(errorEnding(err, true)).toBe('STOPPED');
  });
});
