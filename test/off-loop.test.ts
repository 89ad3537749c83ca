import { afterEach, describe, expect, it } from 'vitest';
import { TooBusyError } from '../src/errors.js';
import { OffLoop } from '../src/services/offLoop.js';
import { previewSchedule } from '../src/services/schedules.js';

/** `n` one-line jobs: 1,000 of them (the most a file may hold) take the compiler a few hundred ms. */
function flowFile(n: number, prefix = 'j'): string {
  return `jobs: [${Array.from({ length: n }, (_, i) => `{name: ${prefix}${i}, steps: [{run: "true"}]}`).join(', ')}]\n`;
}

/** 1,000 jobs with long commands, near the 256 KiB limit: a second or more of compiling. */
/**
 * ~220 KB, 1,000 jobs, each with a yearly schedule of its own and a long step: about 500 ms to
 * compile on a quiet machine when the thread is new, against ~25 ms for SMALL.
 */
function heavyFile(): string {
  const job = (i: number) => `  - {name: h${i}, schedule: "${i % 60} ${Math.floor(i / 60)} 0 ${1 + (i % 28)} ${1 + (i % 12)} *", steps: [{run: "echo ${'x'.repeat(150)}"}]}`;
  return `jobs:\n${Array.from({ length: 1000 }, (_, i) => job(i)).join('\n')}\n`;
}

const SMALL = 'jobs:\n  - name: small\n    schedule: "@hourly"\n    steps: [{run: "true"}]\n';

describe('the off-loop pool', () => {
  const pools: OffLoop[] = [];
  const pool = (settings: { threads?: number; budgetMs?: number; compilesPerUser?: number } = {}) => {
    const p = new OffLoop({ threads: 1, budgetMs: 60_000, compilesPerUser: 4, ...settings });
    pools.push(p);
    return p;
  };
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });

  it('refuses a file over its time budget with a diagnostic naming the budget, then compiles the next file', async () => {
    // Between the two files' times with room both ways (a load slows both alike): 200 ms with a
    // lighter file was once not enough to be over on a quiet moment.
    const p = pool({ budgetMs: 150 });
    const over = await p.compile('mallory', heavyFile());
    expect(over).toEqual({
      ok: false,
      diagnostics: [
        {
          line: 1,
          column: 1,
          path: '',
          severity: 'error',
          message: 'compiling this file took longer than 150 ms, the limit per file (KILN_COMPILE_BUDGET_MS); split it into smaller files',
        },
      ],
    });
    // The thread that ran over was replaced; the budget counts from when the new one starts the task.
    const next = await p.compile('carol', SMALL, undefined, new Date('2026-12-06T10:30:00Z'));
    expect(next).toMatchObject({ ok: true, firstRuns: [{ kind: 'cron', at: Date.parse('2026-12-06T11:00:00Z') }] });
  });

  it("gives another user's file the next turn, not the end of one user's queue", async () => {
    const p = pool();
    const finished: string[] = [];
    const track = (who: string, pending: Promise<unknown>) => pending.then(() => finished.push(who));
    const mallory = [1, 2, 3, 4].map((i) => track(`mallory${i}`, p.compile('mallory', flowFile(1000, `m${i}_`))));
    // Carol arrives while Mallory's first file is compiling and three wait.
    await new Promise((r) => setTimeout(r, 20));
    await Promise.all([...mallory, track('carol', p.compile('carol', SMALL))]);
    expect(finished.indexOf('carol')).toBeLessThanOrEqual(1);
    expect(finished.filter((w) => w.startsWith('mallory'))).toEqual(['mallory1', 'mallory2', 'mallory3', 'mallory4']);
  });

  it("refuses one user's compiles beyond the cap at once, naming it, and not another user's", async () => {
    const p = pool({ compilesPerUser: 2 });
    let done = 0;
    const first = [p.compile('mallory', flowFile(1000, 'a')), p.compile('mallory', flowFile(1000, 'b'))].map((c) => c.finally(() => done++));
    const third = await p.compile('mallory', SMALL).catch((e: unknown) => e);
    // At once: before either of the two in the way has finished.
    expect(done).toBe(0);
    expect(third).toBeInstanceOf(TooBusyError);
    expect((third as Error).message).toBe(
      'you already have 2 job files being computed or waiting, the most one user may have (2); retry when they are done',
    );
    expect((await p.compile('carol', SMALL)).ok).toBe(true);
    expect((await Promise.all(first)).every((r) => r.ok)).toBe(true);
    // Once they are done, Mallory may compile again.
    expect((await p.compile('mallory', SMALL)).ok).toBe(true);
  });

  it('compiles the same file of the same user asked for at once only once, and counts it once', async () => {
    const p = pool({ compilesPerUser: 1 });
    const file = flowFile(1000);
    const [a, b, c] = await Promise.all([p.compile('mallory', file), p.compile('mallory', file), p.compile('mallory', file)]);
    expect(a.ok && b.ok && c.ok).toBe(true);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it('answers a preview of a rare schedule with a diagnostic, computed in the pool', async () => {
    const offLoop = pool();
    await expect(previewSchedule({ offLoop }, 'carol', '0 0 0 * 2 4#5', null, 100)).rejects.toThrow(/fires too rarely/);
    const feb29 = await previewSchedule({ offLoop }, 'carol', '0 0 29 2 *', 'Europe/Paris', 3, new Date('2026-12-06T00:00:00Z'));
    expect(feb29.map((d) => d.toISOString())).toEqual(['2028-02-28T23:00:00.000Z', '2032-02-28T23:00:00.000Z', '2036-02-28T23:00:00.000Z']);
  });
});
