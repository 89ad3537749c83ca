import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mintLocalToken } from '../src/auth/token.js';
import { localAuth } from '../src/config.js';
import { EIGHT_ALIASES, EXECUTIONS_PAGE, LOGS_PAGE, NESTED, TICKS_PAGE } from './helpers/costQueries.js';
import { createTestDatabase } from './helpers/db.js';
import { requireDocker, TEST_IMAGE } from './helpers/docker.js';
import { TEST_SECRET, waitFor } from './helpers/kiln.js';
import { startKilnProcess, type KilnProcess } from './helpers/processes.js';
import { jobYaml } from './helpers/runner.js';

/** Growth of the API process's resident memory allowed over 50 refused amplifications (issue 11). */
const RSS_GROWTH_BOUND = 200 * 1024 * 1024;
/** Lines of 9,990 bytes in the big log: about 10 MB, more than one page's byte cap (8 MiB). */
const BIG_LINES = 1000;
const BIG_LINE = 9990;

type Answer = { status: number; ms: number; data?: any; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };

/** The resident memory of a process, from /proc. */
function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

describe('log amplification against a real kiln process (issue 11, item 2)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let kiln: KilnProcess;
  let url: string;
  let bob: string;
  let alice: string;
  const ids: Record<string, { job: string; execution: string }> = {};

  async function gql(token: string, query: string, variables: Record<string, unknown> = {}): Promise<Answer> {
    const t0 = performance.now();
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as Omit<Answer, 'status' | 'ms'>;
    return { status: res.status, ms: performance.now() - t0, ...body };
  }

  async function submit(token: string, yaml: string): Promise<Array<{ id: string; name: string; lastExecution: { id: string } | null }>> {
    const res = await gql(token, `mutation($s: String!) { submitJob(spec: $s) { jobs { id name lastExecution { id } } } }`, { s: yaml });
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    return res.data.submitJob.jobs;
  }

  async function waitSucceeded(token: string, id: string): Promise<void> {
    await waitFor(
      async () => {
        const { data } = await gql(token, `query($id: ID!) { execution(id: $id) { status error } }`, { id });
        if (data.execution.status === 'SUCCEEDED') return true;
        if (!['QUEUED', 'RUNNING'].includes(data.execution.status)) throw new Error(`execution ${id} ended ${data.execution.status}: ${data.execution.error}`);
        return undefined;
      },
      120_000,
      `execution ${id} to succeed`,
    );
  }

  beforeAll(async () => {
    await requireDocker();
    db = await createTestDatabase();
    kiln = startKilnProcess('start', db.url, 'cost-1', { KILN_DEFAULT_IMAGE: TEST_IMAGE, KILN_WORKER_CONCURRENCY: '3' });
    url = await waitFor(async () => {
      if (kiln.child.exitCode !== null) throw new Error(`kiln start exited:\n${kiln.output()}`);
      return /(http:\/\/127\.0\.0\.1:\d+)\/graphql/.exec(kiln.output())?.[1];
    }, 60_000, 'kiln start to listen');
    const auth = localAuth(new TextEncoder().encode(TEST_SECRET)) as Extract<ReturnType<typeof localAuth>, { mode: 'local' }>;
    [bob, alice] = await Promise.all([mintLocalToken(auth, 'bob', 3600), mintLocalToken(auth, 'alice', 3600)]);

    const bobs = await submit(bob, [
      jobYaml('lines', ['seq 1 10000']).replace(/\n$/, ''),
      jobYaml('biglog', [`s=$(head -c ${BIG_LINE} /dev/zero | tr '\\000' a); yes "$s" | head -n ${BIG_LINES}`]).replace(/^jobs:\n/, '').replace(/\n$/, ''),
      jobYaml('ticker', ['true'], ['schedule: "@every 1s"', 'concurrency: skip']).replace(/^jobs:\n/, ''),
    ].join('\n'));
    const [mine] = await submit(alice, jobYaml('mine', ['echo hello from alice']));
    for (const j of [...bobs, mine!]) ids[j.name] = { job: j.id, execution: j.lastExecution?.id ?? '' };
    await Promise.all(['lines', 'biglog'].map((n) => waitSucceeded(bob, ids[n]!.execution)));
    await waitSucceeded(alice, ids.mine!.execution);
    // A few fire times in the ticker's ledger, then no more work for the worker.
    await waitFor(async () => {
      const { data } = await gql(bob, `query($id: ID!) { job(id: $id) { ticks(first: 10) { edges { node { outcome } } } } }`, { id: ids.ticker!.job });
      return data.job.ticks.edges.length >= 3 ? true : undefined;
    }, 60_000, 'three ticks of the ticker');
    expect((await gql(bob, `mutation($id: ID!) { pauseJob(id: $id) { paused } }`, { id: ids.ticker!.job })).errors).toBeUndefined();
  }, 300_000);

  afterAll(async () => {
    await Promise.race([kiln?.stop(), sleep(15_000).then(() => kiln?.kill())]);
    await db?.drop();
  });

  it('answers the pages users need: 100 ticks, 100 executions with their steps, one 10,000-line log page', async () => {
    const ticks = await gql(bob, TICKS_PAGE, { id: ids.ticker!.job });
    expect(ticks.errors).toBeUndefined();
    const fired = ticks.data.job.ticks.edges.filter((e: any) => e.node.outcome === 'FIRED');
    expect(fired.length).toBeGreaterThanOrEqual(1);
    expect(fired[0].node.execution.id).toMatch(/^[0-9a-f-]{36}$/);

    const executions = await gql(bob, EXECUTIONS_PAGE, { jobId: ids.lines!.job });
    expect(executions.errors).toBeUndefined();
    const lines = executions.data.executions.edges.find((e: any) => e.node.id === ids.lines!.execution);
    expect(lines.node.steps).toEqual([expect.objectContaining({ index: 0, name: 'seq 1 10000', status: 'SUCCEEDED', exitCode: 0 })]);

    const page = await gql(bob, LOGS_PAGE, { id: ids.lines!.execution });
    expect(page.errors).toBeUndefined();
    const logs = page.data.execution.logs as Array<{ seq: number; stream: string; text: string }>;
    expect(logs).toHaveLength(10_000);
    expect(logs.map((l) => l.seq)).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
    const output = logs.filter((l) => l.stream === 'STDOUT').map((l) => l.text);
    expect(output.slice(0, 3)).toEqual(['1', '2', '3']);
  });

  it('refuses 50 amplifications before they run, naming the budget, while a bystander is served and the server stays under +200 MB', async () => {
    const pid = kiln.child.pid!;
    const baseline = rssOf(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 50);
    // Alice reads her own log and her jobs throughout.
    let attacking = true;
    const bystander: Answer[] = [];
    const aliceReads = (async () => {
      while (attacking) {
        bystander.push(await gql(alice, `query($id: ID!) { execution(id: $id) { status logs { text } job { name } } }`, { id: ids.mine!.execution }));
      }
    })();
    const attacks: Answer[] = [];
    try {
      const forms = Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? { query: EIGHT_ALIASES, variables: { id: ids.biglog!.execution } } : { query: NESTED, variables: {} }));
      for (let i = 0; i < forms.length; i += 10) {
        attacks.push(...(await Promise.all(forms.slice(i, i + 10).map((f) => gql(bob, f.query, f.variables)))));
      }
    } finally {
      attacking = false;
      await aliceReads;
      clearInterval(sampler);
    }
    const slowest = Math.max(...attacks.map((a) => a.ms));
    const sorted = bystander.map((b) => b.ms).sort((a, b) => a - b);
    console.log(
      `50 amplifications: slowest refusal ${slowest.toFixed(0)} ms; bystander ${bystander.length} reads, p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms, ` +
        `max ${sorted.at(-1)!.toFixed(0)} ms; API RSS ${(baseline / 2 ** 20).toFixed(0)} MiB -> peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
    );

    expect(attacks).toHaveLength(50);
    for (const a of attacks) {
      expect(a.status).toBe(400);
      expect(a.data).toBeUndefined();
      expect(a.errors).toEqual([
        expect.objectContaining({
          message: expect.stringMatching(/^this request may return up to [\d,]+ rows .* the limit per request is 20,000 \(KILN_QUERY_MAX_ROWS\)/),
          extensions: expect.objectContaining({ code: 'GRAPHQL_VALIDATION_FAILED', budget: 'KILN_QUERY_MAX_ROWS', limit: 20_000, worstCase: expect.any(Number) }),
        }),
      ]);
    }
    // Refused at validation: no page of the 10 MB log is read (one such page alone takes longer).
    expect(slowest).toBeLessThan(3_000);
    expect(bystander.length).toBeGreaterThan(0);
    for (const b of bystander) {
      expect(b.errors).toBeUndefined();
      expect(b.data.execution).toMatchObject({ status: 'SUCCEEDED', job: { name: 'mine' } });
      expect(b.data.execution.logs.map((l: { text: string }) => l.text)).toContain('hello from alice');
    }
    expect(sorted.at(-1)!).toBeLessThan(3_000);
    expect(peak - baseline).toBeLessThan(RSS_GROWTH_BOUND);
  });

  it('refuses the same amplification over graphql-ws', async () => {
    const socket = createClient({ url: `${url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${bob}` }, retryAttempts: 0 });
    try {
      const errors = await new Promise<Array<{ message: string }>>((resolve, reject) => {
        socket.subscribe(
          { query: EIGHT_ALIASES, variables: { id: ids.biglog!.execution } },
          { next: () => reject(new Error('answered')), error: (e) => resolve(e as Array<{ message: string }>), complete: () => reject(new Error('completed')) },
        );
      });
      expect(errors[0]!.message).toMatch(/may return up to 80,001 rows.*KILN_QUERY_MAX_ROWS/);
    } finally {
      await socket.dispose();
    }
  });

  it('cuts a page of long lines at the byte cap, and paging on from the last seq reads every line once', async () => {
    const query = `query($id: ID!, $after: Int!) { execution(id: $id) { logs(afterSeq: $after, limit: 10000) { seq stream text } } }`;
    const first = await gql(bob, query, { id: ids.biglog!.execution, after: 0 });
    expect(first.errors).toBeUndefined();
    const page = first.data.execution.logs as Array<{ seq: number; stream: string; text: string }>;
    const pageBytes = page.reduce((n, l) => n + Buffer.byteLength(l.text) + 128, 0);
    expect(pageBytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(page.length).toBeGreaterThan(700); // 8 MiB / (9,990 + 128) bytes
    expect(page.length).toBeLessThan(BIG_LINES);

    const all = [...page];
    for (;;) {
      const next = await gql(bob, query, { id: ids.biglog!.execution, after: all.at(-1)!.seq });
      expect(next.errors).toBeUndefined();
      if (next.data.execution.logs.length === 0) break;
      all.push(...next.data.execution.logs);
    }
    expect(all.map((l) => l.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    const output = all.filter((l) => l.stream === 'STDOUT');
    expect(output).toHaveLength(BIG_LINES);
    expect(output.every((l) => l.text === 'a'.repeat(BIG_LINE))).toBe(true);
  });

  it('streams the whole log as text over REST', async () => {
    const res = await fetch(`${url}/api/v1/executions/${ids.biglog!.execution}/log`, { headers: { authorization: `Bearer ${bob}` } });
    expect(res.status).toBe(200);
    // Streamed: sent in chunks as it is read, with no length known up front.
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    expect(res.headers.get('content-length')).toBeNull();
    const lines = (await res.text()).split('\n').filter((l) => !l.startsWith('[kiln] ') && l !== '');
    expect(lines).toHaveLength(BIG_LINES);
    expect(lines.every((l) => l === 'a'.repeat(BIG_LINE))).toBe(true);
  });
});
