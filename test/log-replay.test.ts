import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnClient, ExecutionDocument, ExecutionLogPageDocument, ExecutionLogsDocument, SubmitJobDocument, type LogChunkFieldsFragment } from '@kiln/sdk';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';

/**
 * One step prints 5,000 numbered lines in bursts (about 4 s in all), so that subscribers can
 * join from the start, mid-run and after the log is archived.
 */
const LINES = 5000;
const JOB = `jobs:
  - name: Numbered
    image: ${TEST_IMAGE}
    steps:
      - name: count
        run: i=1; while [ $i -le ${LINES} ]; do echo "line $i"; if [ $((i % 500)) -eq 0 ]; then sleep 0.4; fi; i=$((i+1)); done
`;

type Chunk = LogChunkFieldsFragment;

let k: TestKiln;
let client: KilnClient;

/** Subscribes with `afterSeq` and collects every chunk until the subscription completes. */
function follow(executionId: string, afterSeq: number) {
  const chunks: Chunk[] = [];
  const done = (async () => {
    for await (const { executionLogs } of client.subscribe(ExecutionLogsDocument, { executionId, afterSeq })) chunks.push(executionLogs);
  })();
  return { chunks, done };
}

/** Exactly the seqs after `afterSeq` up to `lastSeq`, each once, in order; and the numbered lines among them in order. */
function expectExactlyAfter(chunks: Chunk[], afterSeq: number, lastSeq: number) {
  expect(chunks.map((c) => c.seq)).toEqual(Array.from({ length: lastSeq - afterSeq }, (_, i) => afterSeq + 1 + i));
  const numbers = chunks.filter((c) => c.stream === 'STDOUT').map((c) => Number(/^line (\d+)$/.exec(c.text)![1]));
  for (let i = 1; i < numbers.length; i++) expect(numbers[i]).toBe(numbers[i - 1]! + 1);
  return numbers;
}

beforeAll(async () => {
  await requireDocker();
  k = await startTestKiln();
  client = new KilnClient({ url: k.url, token: await k.token('alice') });
});
afterAll(async () => {
  await client?.close();
  await k?.stop();
});

describe('gapless replay of a real build log', () => {
  it('gives subscribers from the start, from mid-run and from after the archive exactly the lines after their afterSeq, once, in order, and completes each', async () => {
    const { submitJob } = await client.request(SubmitJobDocument, { spec: JOB });
    const executionId = submitJob.jobs[0]!.lastExecution!.id;

    // 1. From the start, subscribed while the execution is still queued.
    const fromStart = follow(executionId, 0);

    // 2. Mid-run: read the log so far, then follow from the last seq read.
    const midRun = await waitFor(async () => {
      const { execution } = await client.request(ExecutionLogPageDocument, { id: executionId, afterSeq: 0, limit: 10_000 });
      const stdout = execution!.logs.filter((c) => c.stream === 'STDOUT').length;
      return stdout >= 1500 ? execution! : undefined;
    }, 60_000, '1500 lines to be logged');
    expect(midRun.status).toBe('RUNNING');
    const midSeq = midRun.logs.at(-1)!.seq;
    const joined = follow(executionId, midSeq);

    await Promise.all([fromStart.done, joined.done]);
    const { execution } = await client.request(ExecutionDocument, { id: executionId });
    expect(execution).toMatchObject({ status: 'SUCCEEDED' });
    const lastSeq = fromStart.chunks.at(-1)!.seq;
    expect(fromStart.chunks.at(-1)).toMatchObject({ stream: 'SYSTEM', text: 'execution succeeded' });

    expect(expectExactlyAfter(fromStart.chunks, 0, lastSeq)).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
    const joinedNumbers = expectExactlyAfter(joined.chunks, midSeq, lastSeq);
    expect(joinedNumbers.at(-1)).toBe(LINES);
    expect(joinedNumbers.length).toBeLessThan(LINES - 1000);

    // 3. After the run is archived.
    await waitFor(async () => ((await client.request(ExecutionDocument, { id: executionId })).execution!.logUrl !== null ? true : undefined), 30_000, 'the log to be archived');
    const afterArchive = follow(executionId, 2500);
    await afterArchive.done;
    expectExactlyAfter(afterArchive.chunks, 2500, lastSeq);

    // 4. Once the chunks are pruned from Postgres, the archive alone serves the replay.
    await k.kiln.deps.pool.query(`delete from log_chunks where execution_id = $1`, [executionId]);
    const fromArchive = follow(executionId, 1234);
    await fromArchive.done;
    expectExactlyAfter(fromArchive.chunks, 1234, lastSeq);
    expect(fromArchive.chunks.map((c) => c.text)).toEqual(fromStart.chunks.slice(1234).map((c) => c.text));
  });
});
