import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { KilnMetrics } from '../src/ops/metrics.js';
import { createLogger, pinoLog } from '../src/ops/pinoLog.js';
import { Readiness } from '../src/ops/readiness.js';

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
