import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireDocker } from './helpers/docker.js';
import { startTestKiln, type TestKiln } from './helpers/kiln.js';
import { jobYaml, outputOf, runJob } from './helpers/runner.js';

/** What the log keeps of one execution's output (KILN_MAX_LOG_BYTES). */
const MAX_LOG_BYTES = 1024 * 1024;
const TWO_GIB = 2 * 1024 ** 3;
const LINE = 'kiln-hostile-output-0123456789abcdefghijklmnopqrstuvwxyz';
/** A secret of the job, so that its output goes through masking (the costly path) until the limit. */
const SECRET = 'hostile-secret-value-42';
/**
 * Growth of this process's resident memory allowed while the 2 GiB flow through it. The worker
 * keeps at most a few megabytes of output in flight (LogWriter's high-water mark, one line per
 * stream); the rest of the bound absorbs the garbage collector's slack on a loaded machine.
 */
const RSS_GROWTH_BOUND = 300 * 1024 * 1024;

describe('a step that prints 2 GiB (real Docker engine)', () => {
  let k: TestKiln;
  let token: string;

  beforeAll(async () => {
    await requireDocker();
    // One execution at a time: the job after the flood can only run once the flood's slot is free.
    k = await startTestKiln({ env: { KILN_MAX_LOG_BYTES: String(MAX_LOG_BYTES), KILN_WORKER_CONCURRENCY: '1' } });
    token = await k.token('flood');
    const set = await k.gql(`mutation($n: String!, $v: String!) { setSecret(name: $n, value: $v) { name } }`, { n: 'FLOOD_SECRET', v: SECRET }, token);
    expect(set.errors).toBeUndefined();
  });

  afterAll(async () => {
    await k?.stop();
  });

  it('keeps the first KILN_MAX_LOG_BYTES, drains the rest in bounded memory, and runs the next job', { timeout: 900_000 }, async () => {
    // Steady state before the flood: the in-process worker's (and API's) memory.
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 100);
    const started = Date.now();
    const cpu0 = process.cpuUsage();
    let flood: Awaited<ReturnType<typeof runJob>>;
    try {
      flood = await runJob(
        k,
        token,
        jobYaml('Flood', [`echo "secret: $FLOOD_SECRET"; yes ${LINE} | head -c ${TWO_GIB}`], ['timeout: 14m', 'secrets: [FLOOD_SECRET]']),
        840_000,
      );
    } finally {
      clearInterval(sampler);
    }
    const wallMs = Date.now() - started;
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `2 GiB of output: ${(wallMs / 1000).toFixed(1)} s submit -> end (${((TWO_GIB / 1024 ** 2) / (wallMs / 1000)).toFixed(0)} MiB/s); ` +
        `RSS ${(baseline / 1024 ** 2).toFixed(0)} MiB before, peak ${(peak / 1024 ** 2).toFixed(0)} MiB (+${((peak - baseline) / 1024 ** 2).toFixed(0)} MiB); ` +
        `CPU of this process (worker + API) ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`,
    );

    // The build itself was unharmed: `head` exited 0 after writing every byte.
    expect(flood.status, flood.error ?? '').toBe('SUCCEEDED');
    expect(flood.steps[0]).toMatchObject({ status: 'SUCCEEDED', exitCode: 0 });

    // The stored log: the output up to the limit, masked, and one SYSTEM line saying it was cut.
    const out = outputOf(flood.logs, 'STDOUT');
    expect(out[0]).toBe('secret: ***');
    expect(out.join('\n')).not.toContain(SECRET);
    const storedBytes = out.reduce((n, line) => n + Buffer.byteLength(line) + 1, 0);
    expect(storedBytes).toBeLessThanOrEqual(MAX_LOG_BYTES + 1);
    expect(storedBytes).toBeGreaterThan(MAX_LOG_BYTES - 2 * LINE.length);
    expect(out.slice(1, -1).every((line) => line === LINE)).toBe(true);
    const truncations = flood.logs.filter((l) => l.stream === 'SYSTEM' && /output truncated/.test(l.text));
    expect(truncations).toHaveLength(1);
    expect(truncations[0]!.text).toMatch(`limit of ${MAX_LOG_BYTES} bytes (KILN_MAX_LOG_BYTES)`);
    // Nothing from the build after the cut: the truncation notice follows the last stored line.
    const lastOutput = flood.logs.filter((l) => l.stream === 'STDOUT').at(-1)!;
    expect(truncations[0]!.seq).toBeGreaterThan(lastOutput.seq);

    // Bounded memory: the worker never held more than a sliver of the 2 GiB.
    expect(peak - baseline).toBeLessThan(RSS_GROWTH_BOUND);

    // The same worker (one slot) goes on with the next job, and the API answers.
    const next = await runJob(k, token, jobYaml('AfterTheFlood', ['echo still here']));
    expect(next.status).toBe('SUCCEEDED');
    expect(outputOf(next.logs)).toEqual(['still here']);
    expect((await fetch(`${k.url}/healthz`)).status).toBe(200);
  });
});
