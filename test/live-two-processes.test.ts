import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKiln, type Kiln } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { KilnClient, ExecutionUpdatedDocument, SubmitJobDocument, TriggerJobDocument, type ExecutionUpdatedSubscription } from '@kiln/sdk';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, TEST_SECRET, type TestKiln } from './helpers/kiln.js';
import { startWorkerProcess, type WorkerProcess } from './helpers/workerProcess.js';

/**
 * The worker runs as its own OS process (`kiln worker`); two API replicas run here, without a
 * worker. Postgres is all they share: every event reaches the replicas through LISTEN/NOTIFY.
 */
const JOB = `jobs:
  - name: TwoProcesses
    schedule: "0 0 1 1 *"
    image: ${TEST_IMAGE}
    steps:
      - name: greet
        run: echo hello
      - name: part
        run: echo world >&2
`;

type Update = ExecutionUpdatedSubscription['executionUpdated'];

let api: TestKiln;
let replica: Kiln;
let worker: WorkerProcess;

beforeAll(async () => {
  await requireDocker();
  api = await startTestKiln({ worker: false });
  replica = await startKiln({
    config: loadConfig({ DATABASE_URL: api.databaseUrl, KILN_DATA_DIR: api.dataDir, KILN_JWT_SECRET: TEST_SECRET, PORT: '0', HOST: '127.0.0.1' }),
    api: true,
    worker: false,
    log: () => {},
  });
  worker = await startWorkerProcess(api.databaseUrl, api.dataDir);
});
afterAll(async () => {
  await worker?.stop();
  await replica?.stop();
  await api?.stop();
});

describe('events across processes', () => {
  it('gives subscribers on two API replicas every status change of an execution run by a worker in another process, in order', async () => {
    expect(api.kiln.worker).toBeNull();
    expect(replica.worker).toBeNull();
    const token = await api.token('alice');
    const onFirst = new KilnClient({ url: api.url, token });
    const onSecond = new KilnClient({ url: replica.http!.url, token });
    try {
      const { submitJob } = await onFirst.request(SubmitJobDocument, { spec: JOB });
      const jobId = submitJob.jobs[0]!.id;

      const follow = (client: KilnClient) => {
        const seen: Update[] = [];
        const done = (async () => {
          for await (const { executionUpdated } of client.subscribe(ExecutionUpdatedDocument, { jobId })) {
            seen.push(executionUpdated);
            if (executionUpdated.status === 'SUCCEEDED' || executionUpdated.status === 'FAILED') return;
          }
        })();
        return { seen, done };
      };
      const first = follow(onFirst);
      const second = follow(onSecond);
      await new Promise((r) => setTimeout(r, 500)); // both subscriptions are in place

      const { triggerJob } = await onFirst.request(TriggerJobDocument, { id: jobId });
      await Promise.race([
        Promise.all([first.done, second.done]),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no final status within 60 s; worker log:\n${worker.output()}`)), 60_000)),
      ]);

      const expected = [
        'QUEUED PENDING,PENDING',
        'RUNNING PENDING,PENDING',
        'RUNNING RUNNING,PENDING',
        'RUNNING SUCCEEDED,PENDING',
        'RUNNING SUCCEEDED,RUNNING',
        'RUNNING SUCCEEDED,SUCCEEDED',
        'SUCCEEDED SUCCEEDED,SUCCEEDED',
      ];
      for (const { seen } of [first, second]) {
        expect(seen.every((u) => u.id === triggerJob.id)).toBe(true);
        expect(seen.map((u) => `${u.status} ${u.steps.map((s) => s.status).join(",")}`), `error: ${seen.at(-1)?.error}`).toEqual(expected);
        expect(seen.at(-1)).toMatchObject({ exitCode: 0, attempt: 1, job: { id: jobId, name: 'TwoProcesses' } });
        expect(seen.at(-1)!.finishedAt).not.toBeNull();
      }
    } finally {
      await onFirst.close();
      await onSecond.close();
    }
  });
});
