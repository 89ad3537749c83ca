import type Dockerode from 'dockerode';
import type pg from 'pg';
import { expect } from 'vitest';
import { ExecutionTrigger } from '../../src/entities/enums.js';
import { insertExecutions } from '../../src/executions/create.js';
import type { JobSpec } from '../../src/jobfile/types.js';
import { inTransaction } from '../../src/util/sql.js';
import { waitFor, type TestKiln } from './kiln.js';

/** The fields of an execution the runner tests look at. */
export const EXECUTION_FIELDS = `id number status attempt exitCode error startedAt finishedAt logUrl
  steps { index name status exitCode }
  artifacts { path size url }`;

export interface ExecutionView {
  id: string;
  number: number;
  status: string;
  attempt: number;
  exitCode: number | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  logUrl: string | null;
  steps: Array<{ index: number; name: string; status: string; exitCode: number | null }>;
  artifacts: Array<{ path: string; size: number; url: string | null }>;
}

export interface LogLineView {
  seq: number;
  stream: 'STDOUT' | 'STDERR' | 'SYSTEM';
  step: number | null;
  text: string;
}

const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

/** Submits a job file and returns the first job's id and its queued execution's id. */
export async function submitJob(k: TestKiln, token: string, yaml: string): Promise<{ jobId: string; executionId: string }> {
  const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id lastExecution { id } } } }`, { s: yaml }, token);
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  const job = res.data!.submitJob.jobs[0];
  return { jobId: job.id, executionId: job.lastExecution.id };
}

export async function getExecution(k: TestKiln, token: string, id: string): Promise<ExecutionView> {
  const res = await k.gql(`query($id: ID!) { execution(id: $id) { ${EXECUTION_FIELDS} } }`, { id }, token);
  expect(res.errors).toBeUndefined();
  return res.data!.execution;
}

/** Polls until the execution reaches a final status. */
export function waitForEnd(k: TestKiln, token: string, id: string, timeoutMs = 60_000): Promise<ExecutionView> {
  return waitFor(
    async () => {
      const e = await getExecution(k, token, id);
      return FINAL.has(e.status) ? e : undefined;
    },
    timeoutMs,
    `execution ${id} to finish`,
  );
}

export function waitForStatus(k: TestKiln, token: string, id: string, status: string, timeoutMs = 60_000): Promise<ExecutionView> {
  return waitFor(
    async () => {
      const e = await getExecution(k, token, id);
      if (e.status === status) return e;
      if (FINAL.has(e.status)) throw new Error(`execution ${id} ended ${e.status} (${e.error}) instead of reaching ${status}`);
      return undefined;
    },
    timeoutMs,
    `execution ${id} to be ${status}`,
  );
}

/** Every log line through the GraphQL `logs` field, paging past its 10,000-line and byte limits. */
export async function logsOf(k: TestKiln, token: string, id: string): Promise<LogLineView[]> {
  const lines: LogLineView[] = [];
  for (;;) {
    const res = await k.gql(`query($id: ID!, $after: Int!) { execution(id: $id) { logs(afterSeq: $after, limit: 10000) { seq stream step text } } }`, { id, after: lines.at(-1)?.seq ?? 0 }, token);
    expect(res.errors).toBeUndefined();
    const page = res.data!.execution.logs as LogLineView[];
    // A page may stop short of 10,000 lines at the byte cap: only an empty page is the end.
    if (page.length === 0) return lines;
    lines.push(...page);
  }
}

/** Submits a one-step-or-more job and waits for its end. */
export async function runJob(k: TestKiln, token: string, yaml: string, timeoutMs = 60_000): Promise<ExecutionView & { logs: LogLineView[] }> {
  const { executionId } = await submitJob(k, token, yaml);
  const e = await waitForEnd(k, token, executionId, timeoutMs);
  return { ...e, logs: await logsOf(k, token, executionId) };
}

/** The build's own output lines (no SYSTEM lines), as text. */
export function outputOf(logs: LogLineView[], stream?: 'STDOUT' | 'STDERR'): string[] {
  return logs.filter((l) => (stream ? l.stream === stream : l.stream !== 'SYSTEM')).map((l) => l.text);
}

/** Kiln's containers (label `kiln`) of one execution, running or not. */
export async function containersOf(docker: Dockerode, executionId: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`kiln.execution=${executionId}`] } });
}

/** A job file of one job named `name` whose steps are `steps` (shell commands), plus extra YAML lines. */
export function jobYaml(name: string, steps: string[], extra: string[] = []): string {
  return [
    'jobs:',
    `  - name: ${name}`,
    ...extra.map((l) => `    ${l}`),
    '    steps:',
    ...steps.map((run) => `      - run: ${JSON.stringify(run)}`),
    '',
  ].join('\n');
}

/**
 * Submits `jobs` jobs of `user` named `${prefix}0`.. (never due: their schedule is 1 January),
 * each one step running `run`, then queues `runsPerJob` MANUAL executions of each of `user`'s jobs
 * in one transaction, as a scheduler burst would.
 */
export async function queueRunsOfNewJobs(
  k: TestKiln,
  db: pg.Pool,
  user: string,
  o: { prefix: string; jobs: number; run: string; runsPerJob: number },
): Promise<void> {
  const lines = Array.from({ length: o.jobs }, (_, i) => `  - name: ${o.prefix}${i}\n    schedule: "0 0 1 1 *"\n    steps: [{run: ${JSON.stringify(o.run)}}]\n`);
  const res = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id } } }`, { s: `jobs:\n${lines.join('')}` }, await k.token(user));
  expect(res.errors).toBeUndefined();
  const { rows: jobs } = await db.query<{ id: string; owner: string; priority: number; definition: JobSpec }>(
    `select id, owner, priority, definition from jobs where owner = $1`,
    [user],
  );
  const items = jobs.flatMap((job) => Array.from({ length: o.runsPerJob }, () => ({ job, trigger: ExecutionTrigger.MANUAL })));
  await inTransaction(db, (sql) => insertExecutions(sql, k.kiln.deps.config.defaultImage, items));
}
