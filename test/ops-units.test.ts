import { EventEmitter } from 'node:events';
import perfHooks from 'node:perf_hooks';
import { Writable } from 'node:stream';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { handBackNow } from '../src/worker/run/handBackNow.js';
import { RunRegistry } from '../src/worker/run/RunRegistry.js';
import { collectStoppableDefaultMetrics, KilnMetrics } from '../src/ops/metrics.js';
import { createLogger, pinoLog } from '../src/ops/pinoLog.js';
import { capText, Readiness } from '../src/ops/readiness.js';
import { ShutdownSignals, StopRequest } from '../src/ops/shutdown.js';
import type { Fence } from '../src/executions/fence.js';

describe('operations configuration', () => {
  it('defaults to info logs and a 30 s shutdown grace', () => {
    expect(loadConfig({})).toMatchObject({ logLevel: 'info', shutdownGraceMs: 30_000, workerPort: null });
    expect(loadConfig({ KILN_LOG_LEVEL: 'DEBUG', KILN_SHUTDOWN_GRACE_MS: '0', KILN_WORKER_PORT: '9464' })).toMatchObject({
      logLevel: 'debug', shutdownGraceMs: 0, workerPort: 9464,
    });
  });

  it('refuses a bad level or grace, naming the variable', () => {
    expect(() => loadConfig({ KILN_LOG_LEVEL: 'loud' })).toThrow(ConfigError);
    expect(() => loadConfig({ KILN_LOG_LEVEL: 'loud' })).toThrow(/KILN_LOG_LEVEL/);
    expect(() => loadConfig({ KILN_SHUTDOWN_GRACE_MS: '30s' })).toThrow(/KILN_SHUTDOWN_GRACE_MS/);
    expect(() => loadConfig({ KILN_SHUTDOWN_GRACE_MS: '-1' })).toThrow(/KILN_SHUTDOWN_GRACE_MS/);
  });
});

describe('the pino log adapter', () => {
  function capture() {
    const lines: Array<Record<string, any>> = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    });
    return { lines, sink };
  }

  it('writes one JSON object per line with the fields, at the level they ask for', () => {
    const { lines, sink } = capture();
    const log = pinoLog(createLogger('info', sink));
    log('plain');
    log('execution started', { executionId: 'e1', jobId: 'j1', attempt: 2, workerId: 'w1' });
    log('lease lost', { level: 'warn', executionId: 'e1' });
    log('noise', { level: 'debug' });
    log('broke', { level: 'error', err: new Error('boom') });
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'plain', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(lines[1]).toMatchObject({ level: 'info', msg: 'execution started', executionId: 'e1', jobId: 'j1', attempt: 2, workerId: 'w1' });
    expect(lines[2]).toMatchObject({ level: 'warn', executionId: 'e1' });
    expect(lines[3]).toMatchObject({ level: 'error', err: { message: 'boom', stack: expect.stringContaining('Error: boom') } });
  });
});

describe('Readiness', () => {
  it('fails a check that hangs at its deadline, and joins it instead of starting another', async () => {
    let started = 0;
    const readiness = new Readiness(
      [
        { name: 'fast', check: async () => {} },
        { name: 'hangs', check: () => (started++, new Promise<void>(() => {})) },
      ],
      200,
    );
    const t0 = Date.now();
    const [a, b] = await Promise.all([readiness.report(), readiness.report()]);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(a).toEqual({ ready: false, status: 'not ready', checks: { fast: 'ok', hangs: 'hangs timed out after 200 ms' }, failed: ['hangs'] });
    expect(b).toEqual(a);
    expect(started).toBe(1);
  });

  it('is not ready once shutting down, whatever the checks say', async () => {
    const readiness = new Readiness([{ name: 'fast', check: async () => {} }]);
    expect((await readiness.report()).ready).toBe(true);
    readiness.shutDown();
    expect(await readiness.report()).toMatchObject({ ready: false, failed: ['shutdown'] });
  });
});

describe('KilnMetrics', () => {
  it('keeps each instance in a registry of its own', async () => {
    const a = new KilnMetrics();
    const b = new KilnMetrics();
    a.executionFinished('SUCCEEDED', 1.5);
    a.logBytes(42);
    a.watchLeader(() => true);
    const textA = (await a.render()).body;
    const textB = (await b.render()).body;
    expect(textA).toContain('kiln_executions_finished_total{status="SUCCEEDED"} 1');
    expect(textA).toContain('kiln_log_bytes_total 42');
    expect(textA).toContain('kiln_scheduler_leader 1');
    expect(textB).not.toContain('kiln_executions_finished_total{status="SUCCEEDED"}');
    expect(textB).toContain('kiln_log_bytes_total 0');
    expect(textB).toContain('kiln_scheduler_leader 0');
  });
});

describe('Readiness (coalescing, cache, reasons)', () => {
  it('does not start a hung check again after its deadline, only once it has settled', async () => {
    let started = 0;
    let settle: (() => void) | null = null;
    const readiness = new Readiness([{ name: 'hangs', check: () => (started++, new Promise<void>((r) => (settle = r))) }], 100, 0);
    expect((await readiness.report()).checks.hangs).toBe('hangs timed out after 100 ms');
    // Past its deadline and still in flight: later probes join it (and answer at once).
    const t0 = Date.now();
    expect((await readiness.report()).checks.hangs).toBe('hangs timed out after 100 ms');
    expect((await readiness.report()).checks.hangs).toBe('hangs timed out after 100 ms');
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(started).toBe(1);
    settle!();
    await new Promise((r) => setTimeout(r, 10));
    const again = readiness.report();
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toBe(2);
    settle!();
    expect((await again).checks.hangs).toBe('ok');
  });

  it('answers probes that come within cacheMs with the last result, without checking again', async () => {
    let started = 0;
    const readiness = new Readiness([{ name: 'db', check: async () => void started++ }], 1_000, 200);
    for (let i = 0; i < 5; i++) expect((await readiness.report()).ready).toBe(true);
    expect(started).toBe(1);
    await new Promise((r) => setTimeout(r, 250));
    await readiness.report();
    expect(started).toBe(2);
  });

  it('cuts a long reason to 200 characters', async () => {
    const readiness = new Readiness([{ name: 'chatty', check: async () => { throw new Error('x'.repeat(5_000)); } }]);
    const r = await readiness.report();
    expect(r.checks.chatty).toHaveLength(200);
    expect(r.checks.chatty.endsWith('…')).toBe(true);
    expect(capText('short')).toBe('short');
  });
});

/** A pg.Pool stand-in whose query does what `answer` says, counting calls. */
function fakePool(answer: () => Promise<{ rows: Array<{ queued: string; running: string }> }>) {
  const calls: Array<Record<string, unknown>> = [];
  const pool = {
    query: (config: Record<string, unknown>) => {
      calls.push(config);
      return answer();
    },
  };
  return { pool: pool as unknown as pg.Pool, calls };
}

function line(text: string, name: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
}

describe('KilnMetrics database gauges', () => {
  it('reads both gauges with one bounded query, shows kiln_database_up 1, and serves scrapes within cacheMs from it', async () => {
    const { pool, calls } = fakePool(async () => ({ rows: [{ queued: '3', running: '2' }] }));
    const m = new KilnMetrics({ defaultMetrics: false });
    m.watchDatabase(pool, { cacheMs: 300 });
    for (let i = 0; i < 4; i++) {
      const text = (await m.render()).body;
      expect(line(text, 'kiln_queue_depth')).toBe('kiln_queue_depth 3');
      expect(line(text, 'kiln_executions_running')).toBe('kiln_executions_running 2');
      expect(line(text, 'kiln_database_up')).toBe('kiln_database_up 1');
    }
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ query_timeout: expect.any(Number) });
    await new Promise((r) => setTimeout(r, 350));
    await m.render();
    expect(calls).toHaveLength(2);
    m.close();
  });

  it('leaves the gauges out (not 0) and shows kiln_database_up 0 while Postgres fails', async () => {
    const { pool } = fakePool(async () => {
      throw new Error('connect ECONNREFUSED');
    });
    const m = new KilnMetrics({ defaultMetrics: false });
    m.watchDatabase(pool);
    const text = (await m.render()).body;
    expect(line(text, 'kiln_queue_depth')).toBeUndefined();
    expect(line(text, 'kiln_executions_running')).toBeUndefined();
    expect(line(text, 'kiln_database_up')).toBe('kiln_database_up 0');
    // The help and type lines stay: the series is what is absent.
    expect(text).toContain('# TYPE kiln_queue_depth gauge');
    m.close();
  });

  it('shows the gauges again once a reading succeeds after a failure', async () => {
    let fail = true;
    const { pool } = fakePool(async () => {
      if (fail) throw new Error('down');
      return { rows: [{ queued: '0', running: '1' }] };
    });
    const m = new KilnMetrics({ defaultMetrics: false });
    m.watchDatabase(pool, { cacheMs: 0 });
    expect(line((await m.render()).body, 'kiln_queue_depth')).toBeUndefined();
    fail = false;
    const text = (await m.render()).body;
    expect(line(text, 'kiln_queue_depth')).toBe('kiln_queue_depth 0');
    expect(line(text, 'kiln_executions_running')).toBe('kiln_executions_running 1');
    m.close();
  });

  it('answers within its limit while the query hangs, and starts no other query until it settles', async () => {
    let settle: ((v: { rows: Array<{ queued: string; running: string }> }) => void) | null = null;
    const { pool, calls } = fakePool(() => new Promise((r) => (settle = r)));
    const m = new KilnMetrics({ defaultMetrics: false });
    m.watchDatabase(pool, { cacheMs: 0, timeoutMs: 100 });
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const text = (await m.render()).body;
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(line(text, 'kiln_queue_depth')).toBeUndefined();
      expect(line(text, 'kiln_database_up')).toBe('kiln_database_up 0');
    }
    expect(calls).toHaveLength(1);
    settle!({ rows: [{ queued: '5', running: '0' }] });
    await new Promise((r) => setTimeout(r, 10));
    const render = m.render();
    expect(calls).toHaveLength(2);
    settle!({ rows: [{ queued: '6', running: '0' }] });
    expect(line((await render).body, 'kiln_queue_depth')).toBe('kiln_queue_depth 6');
    m.close();
  });
});

describe('KilnMetrics.close', () => {
  it('empties the registry and stops the event-loop and GC monitors of the default metrics', async () => {
    const histograms: Array<ReturnType<typeof perfHooks.monitorEventLoopDelay>> = [];
    const original = perfHooks.monitorEventLoopDelay;
    const spy = vi.spyOn(perfHooks, 'monitorEventLoopDelay').mockImplementation((o) => {
      const h = original(o);
      histograms.push(h);
      return h;
    });
    let m: KilnMetrics;
    try {
      m = new KilnMetrics();
    } finally {
      spy.mockRestore();
    }
    expect(histograms).toHaveLength(1);
    expect((await m.render()).body).toContain('kiln_nodejs_eventloop_lag_seconds');
    m.close();
    m.close();
    expect((await m.render()).body.trim()).toBe('');
    // disable() answers false when the monitor was already stopped.
    expect(histograms[0]!.disable()).toBe(false);
    // The process's own perf_hooks are untouched.
    expect(perfHooks.monitorEventLoopDelay).toBe(original);
  });

  it('catches both monitors prom-client starts', () => {
    const { stop, monitors } = collectStoppableDefaultMetrics(new Registry(), 'kiln_test_');
    expect(monitors).toBe(2);
    stop();
  });
});

describe('RunRegistry.stopAll', () => {
  it('ends every waiter as soon as the run ends, when two stop the same runs (drain and a cut grace)', async () => {
    const leases = new RunRegistry();
    const fence = { id: 'e1', attempt: 1, workerId: 'w1' } as Fence;
    leases.hold(fence, () => setTimeout(() => leases.release(fence), 20));
    const t0 = Date.now();
    const [a, b] = await Promise.all([leases.stopAll('drain', 10_000), leases.stopAll('cut', 10_000)]);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(a).toEqual([fence]);
    expect(b).toEqual([fence]);
    expect(leases.size).toBe(0);
  });

  it('handBackNow does nothing without running executions', async () => {
    const leases = new RunRegistry();
    expect(await handBackNow(leases, { pool: {} as pg.Pool, reason: 'x', log: () => {} })).toBe(0);
    expect(await handBackNow(null, { pool: {} as pg.Pool, reason: 'x', log: () => {} })).toBe(0);
  });
});

describe('ShutdownSignals', () => {
  function setup(deadlineMs = 60_000) {
    const request = new StopRequest();
    const graces: number[] = [];
    request.watch((g) => graces.push(g));
    const exits: number[] = [];
    const lines: Array<{ message: string; level?: string }> = [];
    const signals = new ShutdownSignals({
      graceMs: 30_000,
      deadlineMs,
      log: () => (message, fields) => lines.push({ message, level: fields?.level }),
      request,
      exit: (code) => exits.push(code),
    });
    return { request, graces, exits, lines, signals };
  }

  it('stops with the grace, then with none, then exits 1 at once', () => {
    const { request, graces, exits, lines, signals } = setup();
    signals.handle('SIGTERM');
    expect(graces).toEqual([30_000]);
    expect(request).toMatchObject({ requested: true, graceMs: 30_000 });
    expect(lines[0]!.message).toMatch(/^SIGTERM: shutting down \(grace for running executions: 30000 ms; at most 60000 ms in all\)/);
    signals.handle('SIGINT');
    expect(graces).toEqual([30_000, 0]);
    expect(lines[1]).toMatchObject({ level: 'warn', message: expect.stringMatching(/SIGINT again: .*handing them back now/) });
    expect(exits).toEqual([]);
    signals.handle('SIGTERM');
    expect(exits).toEqual([1]);
    expect(lines[2]).toMatchObject({ level: 'error', message: expect.stringMatching(/a third time: exiting now/) });
    signals.done();
  });

  it('exits 1 with a log line when the shutdown outlasts its deadline, and not once it is done', async () => {
    const late = setup(100);
    late.signals.handle('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(late.exits).toEqual([1]);
    expect(late.lines.at(-1)).toMatchObject({ level: 'error', message: expect.stringMatching(/did not finish within 100 ms.*exiting with code 1/) });

    const onTime = setup(100);
    onTime.signals.handle('SIGTERM');
    onTime.signals.done();
    await new Promise((r) => setTimeout(r, 300));
    expect(onTime.exits).toEqual([]);
  });

  it('installs itself as the only SIGINT and SIGTERM handler', () => {
    const { signals, graces } = setup();
    const target = new EventEmitter();
    target.on('SIGTERM', () => graces.push(-1));
    signals.install(target as unknown as NodeJS.Process);
    signals.install(target as unknown as NodeJS.Process);
    expect(target.listenerCount('SIGTERM')).toBe(1);
    expect(target.listenerCount('SIGINT')).toBe(1);
    target.emit('SIGTERM');
    expect(graces).toEqual([30_000]);
    signals.done();
  });

  it('StopRequest only ever shortens the grace, and tells late watchers at once', () => {
    const request = new StopRequest();
    request.request(5_000);
    request.request(10_000);
    const seen: number[] = [];
    const unwatch = request.watch((g) => seen.push(g));
    request.request(0);
    unwatch();
    request.request(-1);
    expect(seen).toEqual([5_000, 0]);
  });
});
