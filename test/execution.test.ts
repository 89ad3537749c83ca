import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArchivedLog } from '../src/logs/archive.js';
import { archivedNdjson, archivedText } from './helpers/archive.js';
import { FilesystemStore } from '../src/storage/filesystem.js';
import { S3Store } from '../src/storage/s3.js';
import type { ArtifactStore } from '../src/storage/ArtifactStore.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { startS3rver, s3StoreOn } from './helpers/s3.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const TWO_STEPS = `jobs:
  - name: HelloWorld
    image: ${TEST_IMAGE}
    steps:
      - name: greet
        run: echo hello
      - run: echo world >&2; exit 3
`;

const EXECUTION = `query($id: ID!) { execution(id: $id) {
  id number status trigger attempt exitCode error startedAt finishedAt durationMs logUrl
  steps { index name status exitCode startedAt finishedAt }
  logs { seq stream step text at }
  job { name }
} }`;

/** Submits the two-step job and waits for its execution to finish; returns it as GraphQL shows it. */
async function runTwoSteps(k: TestKiln, token: string) {
  const submitted = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { id lastExecution { id status trigger } } } }`, { s: TWO_STEPS }, token);
  expect(submitted.errors).toBeUndefined();
  const job = submitted.data!.submitJob.jobs[0];
  expect(job.lastExecution).toMatchObject({ status: 'QUEUED', trigger: 'SUBMIT' });
  return waitFor(
    async () => {
      const res = await k.gql(EXECUTION, { id: job.lastExecution.id }, token);
      const e = res.data!.execution;
      return e.status !== 'QUEUED' && e.status !== 'RUNNING' && e.logUrl !== null ? e : undefined;
    },
    60_000,
    'the execution to finish and its log to be archived',
  );
}

/** The build's own lines of a plain-text log, without Kiln's `[kiln]` lines. */
function buildLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('[kiln] '));
}

function expectFailedTwoSteps(e: any) {
  expect(e).toMatchObject({ number: 1, status: 'FAILED', exitCode: 3, attempt: 1, job: { name: 'HelloWorld' } });
  expect(e.error).toMatch(/exited with code 3/);
  expect(e.durationMs).toBeGreaterThanOrEqual(0);
  expect(e.steps).toMatchObject([
    { index: 0, name: 'greet', status: 'SUCCEEDED', exitCode: 0 },
    { index: 1, name: 'echo world >&2; exit 3', status: 'FAILED', exitCode: 3 },
  ]);
  const build = e.logs.filter((l: any) => l.stream !== 'SYSTEM');
  expect(build).toMatchObject([
    { stream: 'STDOUT', step: 0, text: 'hello' },
    { stream: 'STDERR', step: 1, text: 'world' },
  ]);
  // seq is gapless from 1, SYSTEM lines included.
  expect(e.logs.map((l: any) => l.seq)).toEqual(e.logs.map((_: unknown, i: number) => i + 1));
}

async function expectArchived(k: TestKiln, store: ArtifactStore, e: any) {
  const archived = parseArchivedLog(await archivedNdjson(k.kiln.deps.pool, store, e.id));
  expect(archived.map((l) => [l.seq, l.stream, l.step, l.text])).toEqual(e.logs.map((l: any) => [l.seq, l.stream, l.step, l.text]));
  const text = await archivedText(k.kiln.deps.pool, store, e.id, e.logs.length);
  expect(buildLines(text)).toEqual(['hello', 'world']);
  expect(text).toContain('[kiln] step "echo world >&2; exit 3" exited with code 3');
}

describe('running a one-off job in Docker', () => {
  beforeAll(async () => {
    await requireDocker();
  });

  describe('with the log archived to an S3-compatible server', () => {
    let k: TestKiln;
    let s3: Awaited<ReturnType<typeof startS3rver>>;
    let store: S3Store;
    beforeAll(async () => {
      s3 = await startS3rver();
      store = s3StoreOn(s3);
      k = await startTestKiln({ store });
    });
    afterAll(async () => {
      await k?.stop();
      store?.close();
      await s3?.stop();
    });

    it('ends FAILED with exit code 3 after step 2, with both lines in order and the log in S3', async () => {
      const token = await k.token('alice');
      const e = await runTwoSteps(k, token);
      expectFailedTwoSteps(e);
      await expectArchived(k, store, e);
      // A small log has no text object to presign (docs/design.md#archives): Kiln's route renders
      // it from the NDJSON in S3. (A big log's presigned text: runner-archive.test.ts.)
      expect(e.logUrl).toBe(`/api/v1/executions/${e.id}/log`);
      const viaUrl = await (await fetch(`${k.url}${e.logUrl}`, { headers: { authorization: `Bearer ${token}` } })).text();
      expect(buildLines(viaUrl)).toEqual(['hello', 'world']);
    });
  });

  describe('with the log archived to the local store', () => {
    let k: TestKiln;
    let dir: string;
    let store: FilesystemStore;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'kiln-store-'));
      store = new FilesystemStore(dir);
      k = await startTestKiln({ store });
    });
    afterAll(async () => {
      await k?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it('archives the same log to the local directory and serves it over REST', async () => {
      const token = await k.token('alice');
      const e = await runTwoSteps(k, token);
      expectFailedTwoSteps(e);
      await expectArchived(k, store, e);
      expect(e.logUrl).toBe(`/api/v1/executions/${e.id}/log`);
      const res = await fetch(`${k.url}${e.logUrl}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(buildLines(await res.text())).toEqual(['hello', 'world']);
    });

    it('runs a job whose steps all succeed to SUCCEEDED', async () => {
      const token = await k.token('bob');
      const spec = `jobs:\n  - name: Ok\n    env: { GREETING: hi }\n    steps:\n      - run: echo "$GREETING from $(pwd)"\n      - run: echo "$STEP_VAR"\n        env: { STEP_VAR: two }\n`;
      const submitted = await k.gql(`mutation($s: String!) { submitJob(spec: $s) { jobs { lastExecution { id } } } }`, { s: spec }, token);
      const id = submitted.data!.submitJob.jobs[0].lastExecution.id;
      const e = await waitFor(async () => {
        const r = (await k.gql(EXECUTION, { id }, token)).data!.execution;
        return r.status === 'QUEUED' || r.status === 'RUNNING' ? undefined : r;
      }, 60_000, 'the execution to finish');
      expect(e).toMatchObject({ status: 'SUCCEEDED', exitCode: 0 });
      expect(e.logs.filter((l: any) => l.stream === 'STDOUT').map((l: any) => l.text)).toEqual(['hi from /workspace', 'two']);
    });
  });
});
