import type { Socket } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { KilnClient, ExecutionDocument, SubmitJobDocument } from '@kiln/sdk';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { startTestKiln, waitFor, type TestKiln } from './helpers/kiln.js';
import { startWorkerProcess, type WorkerProcess } from './helpers/workerProcess.js';

/** 80,000 lines of ~1 kB: an 80 MB log, far more than a server may hold for one subscriber. */
const LINES = 80_000;
const JOB = `jobs:
  - name: Loud
    image: ${TEST_IMAGE}
    steps:
      - run: awk 'BEGIN { s = sprintf("%1000s", ""); gsub(/ /, "x", s); for (i = 1; i <= ${LINES}; i++) print i " " s }'
`;

/**
 * A bare graphql-transport-ws client whose TCP socket can be paused: while paused it reads
 * nothing, so whatever the server sends piles up on the server's side.
 */
async function stallableSubscriber(url: string, token: string, executionId: string) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
  const seqs: number[] = [];
  let completed!: (how: string) => void;
  const done = new Promise<string>((resolve) => (completed = resolve));
  ws.on('close', (code) => completed(`closed with ${code} before completing`));
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (raw) => {
      const msg = JSON.parse(String(raw)) as { type: string; payload?: { data?: { executionLogs: { seq: number } } } };
      if (msg.type === 'connection_ack') {
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription($id: ID!) { executionLogs(executionId: $id) { seq text } }', variables: { id: executionId } } }));
        resolve();
      } else if (msg.type === 'next') seqs.push(msg.payload!.data!.executionLogs.seq);
      else if (msg.type === 'complete') completed('complete');
      else if (msg.type === 'ping') ws.send(JSON.stringify({ type: 'pong' }));
    });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
  });
  const socket = (ws as unknown as { _socket: Socket })._socket;
  return { seqs, done, pause: () => socket.pause(), resume: () => socket.resume(), close: () => ws.close() };
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** What this process (the API) retains: measured after a full collection, so garbage does not count. */
const retained = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

let k: TestKiln;
let worker: WorkerProcess;
let client: KilnClient;

// The worker runs in its own process, so this process's memory is the API's alone.
beforeAll(async () => {
  await requireDocker();
  // Pings every 2 minutes: the stalled subscriber cannot answer them, and this test is not about that.
  k = await startTestKiln({ worker: false, env: { KILN_WS_KEEPALIVE_MS: '120000' } });
  worker = await startWorkerProcess(k.databaseUrl, k.dataDir);
  client = new KilnClient({ url: k.url, token: await k.token('alice') });
});
afterAll(async () => {
  await client?.close();
  await worker?.stop();
  await k?.stop();
});

describe('a subscriber that stops reading', () => {
  it('neither holds up the build nor makes the server buffer its log, and gets every line once it reads again', { timeout: 240_000 }, async () => {
    const { submitJob } = await client.request(SubmitJobDocument, { spec: JOB });
    const executionId = submitJob.jobs[0]!.lastExecution!.id;
    const slow = await stallableSubscriber(k.url, await k.token('alice'), executionId);
    try {
      slow.pause();
      const before = retained();
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, retained())), 200);
      const started = Date.now();
      const finished = await waitFor(async () => {
        const { execution } = await client.request(ExecutionDocument, { id: executionId });
        return execution!.status === 'RUNNING' || execution!.status === 'QUEUED' ? undefined : execution!;
      }, 120_000, 'the build to finish');
      // Whatever the server would pile up for the subscriber, it has read it by now.
      await new Promise((r) => setTimeout(r, 2000));
      clearInterval(sampler);
      // The build ran to its end while the subscriber read nothing.
      expect(finished.status).toBe('SUCCEEDED');
      expect(slow.seqs.length).toBeLessThan(LINES);
      // 80 MB of log went by; what the server kept for the stalled subscriber stayed a fraction of it.
      const grewMb = (peak - before) / 1024 / 1024;
      expect(grewMb, `grew ${grewMb.toFixed(1)} MB in ${Date.now() - started} ms`).toBeLessThan(30);

      slow.resume();
      expect(await slow.done).toBe('complete');
      const last = slow.seqs.at(-1)!;
      expect(slow.seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      expect(last).toBeGreaterThan(LINES);
    } finally {
      slow.close();
    }
  });
});
