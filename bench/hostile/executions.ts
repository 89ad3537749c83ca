import { sleep } from '../lib/stats.js';
import { type Answer, dataOf, gql, type User } from './api.js';
import type { HostileContext } from './context.js';

/** Executions as the benchmark's users see them through the API: submit, poll, cancel. */

export interface Execution {
  status: string;
  attempt: number;
  error: string | null;
}

export async function executionOf(url: string, user: User, id: string, signal?: AbortSignal): Promise<Execution> {
  const d = await dataOf<{ execution: Execution | null }>(await gql(url, user.token, 'query($id: ID!) { execution(id: $id) { status attempt error } }', { id }, signal), 'execution');
  if (!d.execution) throw new Error(`execution ${id} not found`);
  return d.execution;
}

/** Submits a one-off job file as `user`; the answer as it came (a refusal is a result here). */
export function submitOneOffAnswer(url: string, user: User, spec: string, signal?: AbortSignal): Promise<Answer> {
  return gql(url, user.token, 'mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }', { s: spec }, signal);
}

/** The id of the first job's execution in an answer of submitOneOffAnswer; throws on a refusal. */
export function oneOffExecutionId(a: Answer): string {
  const d = dataOf<{ submitJob: { jobs: Array<{ lastExecution: { id: string } | null }> } }>(a, 'submitJob');
  const id = d.submitJob.jobs[0]?.lastExecution?.id;
  if (!id) throw new Error('submitJob: a one-off job without an execution');
  return id;
}

/** Submits a one-off job file as `user`; the id of its first job's execution. */
export async function submitOneOff(url: string, user: User, spec: string): Promise<string> {
  return oneOffExecutionId(await submitOneOffAnswer(url, user, spec));
}

/** Polls until the execution leaves `statuses` or `timeoutMs` passes; its last state. */
export async function waitWhile(url: string, user: User, id: string, statuses: string[], timeoutMs: number): Promise<Execution> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const e = await executionOf(url, user, id).catch((err: Error) => ({ status: 'no answer', attempt: 0, error: err.message.slice(0, 80) }));
    if (!statuses.includes(e.status) || Date.now() > until) return e;
    await sleep(250);
  }
}

/**
 * Polls A's build until it ends or the window does; a note for the report either way
 * ("A's build FAILED after 3.2 s: ...").
 */
export async function attackerBuildEnd(ctx: HostileContext, id: string, signal: AbortSignal): Promise<string> {
  const t0 = performance.now();
  while (!signal.aborted) {
    const e = await executionOf(ctx.url, ctx.a, id, signal).catch(() => null);
    if (e && !['QUEUED', 'RUNNING'].includes(e.status)) {
      return `A's build ${e.status} (attempt ${e.attempt}) after ${((performance.now() - t0) / 1000).toFixed(1)} s${e.error ? `: ${e.error.slice(0, 100)}` : ''}`;
    }
    await sleep(500);
  }
  return "A's build still running at the window's end (cancelled)";
}

/** Cancels A's build (after its phase), if it was submitted. */
export async function cancelAttackerBuild(ctx: HostileContext, id: string | null): Promise<void> {
  if (id) await gql(ctx.url, ctx.a.token, 'mutation($id: ID!) { cancelExecution(id: $id) { status } }', { id });
}
