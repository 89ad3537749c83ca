import { createHash } from 'node:crypto';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { OffLoopSettings } from '../config.js';
import { TooBusyError } from '../errors.js';
import type { CompileOutcome, FireTimesOutcome, OffLoopTask } from '../jobfile/offLoopTasks.js';
import type { JobFilePolicy } from '../jobfile/compile.js';

/**
 * Most schedule computations (`schedulePreview`, `Job.nextRuns`) of one user waiting at once:
 * a page of 100 jobs with their `nextRuns`, twice over.
 */
export const FIRE_TIMES_PER_USER = 200;

/** How a task ended: its value, or refused for running past the budget or the thread's memory. */
type Ending<R> = { ok: true; value: R } | { ok: false; reason: 'budget' | 'memory' };

interface Waiting {
  owner: string;
  task: OffLoopTask;
  settle(ending: Ending<unknown>): void;
  fail(error: unknown): void;
}

/** Each thread's heap; a compile that needs more is refused instead of growing the process. */
const THREAD_HEAP_MB = 256;

/**
 * Runs job-file compiles and schedule computations in a small pool of worker threads, so that
 * no request's input holds the API's event loop (docs/design.md#off-the-loop).
 *
 * Invariants: piscina holds at most one task per thread (the rest wait here), so a task's budget
 * counts from when a thread takes it; the waiting tasks are served one owner at a time in turn,
 * so one user's burst delays another user's file by at most the tasks already in the threads; each owner may
 * have at most `compilesPerUser` compiles (FIRE_TIMES_PER_USER schedule computations) pending,
 * and beyond that is refused at once with TooBusyError.
 */
export class OffLoop {
  private readonly pool: Piscina;
  /** Waiting tasks by owner (see takeNext for whose turn it is). */
  private readonly waiting = new Map<string, Waiting[]>();
  private readonly pending = new Map<string, number>();
  /** Compiles of validateJobSpec in flight, by owner and file hash. */
  private readonly compiling = new Map<string, Promise<CompileOutcome>>();
  /** When each owner with work pending was last given a thread (a count of turns). */
  private readonly lastServed = new Map<string, number>();
  private turns = 0;
  /** Tasks of each owner in the threads now. */
  private readonly inThreads = new Map<string, number>();
  private running = 0;
  private closed = false;

  /** `minThreads`: threads started at once (the API's); the rest start when work comes. */
  constructor(
    private readonly settings: Readonly<OffLoopSettings>,
    minThreads = settings.threads,
  ) {
    // From the TypeScript sources (tests) the thread strips types itself (see offLoopThread.ts).
    const fromSource = import.meta.url.endsWith('.ts');
    this.pool = new Piscina({
      filename: new URL(`../jobfile/offLoopThread.${fromSource ? 'ts' : 'js'}`, import.meta.url).href,
      minThreads,
      maxThreads: settings.threads,
      idleTimeout: 60_000,
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB },
      ...(fromSource ? { execArgv: ['--experimental-transform-types', '--disable-warning=ExperimentalWarning'] } : {}),
    });
  }

  /**
   * Compiles a job file for `owner` under the server's repository policy; with `now`, also each
   * job's first fire time after it. The
   * same file of the same owner already compiling without `now` (validateJobSpec in several
   * aliases or requests at once) is compiled once for all of them.
   */
  compile(owner: string, source: string, policy?: JobFilePolicy, now?: Date): Promise<CompileOutcome> {
    if (now !== undefined) return this.compileOnce(owner, source, policy, now);
    const key = `${owner}\u0000${JSON.stringify(policy ?? null)}\u0000${createHash('sha256').update(source).digest('base64')}`;
    const inFlight = this.compiling.get(key);
    if (inFlight !== undefined) return inFlight;
    const compiled = this.compileOnce(owner, source, policy);
    this.compiling.set(key, compiled);
    const forget = () => this.compiling.delete(key);
    compiled.then(forget, forget);
    return compiled;
  }

  private async compileOnce(owner: string, source: string, policy?: JobFilePolicy, now?: Date): Promise<CompileOutcome> {
    const task: OffLoopTask = { kind: 'compile', source, policy, now: now?.getTime() };
    const ending = await this.submit<CompileOutcome>(owner, task, this.settings.compilesPerUser, 'job files');
    if (ending.ok) return ending.value;
    const message =
      ending.reason === 'budget'
        ? `compiling this file took longer than ${this.settings.budgetMs} ms, the limit per file (KILN_COMPILE_BUDGET_MS); split it into smaller files`
        : `compiling this file needed more than ${THREAD_HEAP_MB} MB of memory, the limit per file; split it into smaller files`;
    return { ok: false, diagnostics: [{ line: 1, column: 1, path: '', message, severity: 'error' }] };
  }

  /** The next `count` fire times of a schedule, or why there are none; refused past the budget. */
  async fireTimes(owner: string, schedule: string, timezone: string, after: Date, anchor: Date, count: number): Promise<FireTimesOutcome> {
    const task: OffLoopTask = { kind: 'fireTimes', schedule, timezone, after: after.getTime(), anchor: anchor.getTime(), count };
    const ending = await this.submit<FireTimesOutcome>(owner, task, FIRE_TIMES_PER_USER, 'schedule computations');
    if (ending.ok) return ending.value;
    return { ok: false, error: `schedule: computing ${count} fire times took longer than ${this.settings.budgetMs} ms (KILN_COMPILE_BUDGET_MS); ask for fewer` };
  }

  /** Stops the threads; tasks not finished are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool.destroy();
  }

  private submit<R>(owner: string, task: OffLoopTask, cap: number, what: string): Promise<Ending<R>> {
    if (this.closed) return Promise.reject(new Error('the server is shutting down'));
    const key = `${task.kind}\u0000${owner}`;
    const pending = this.pending.get(key) ?? 0;
    if (pending >= cap) {
      return Promise.reject(new TooBusyError(`you already have ${pending} ${what} being computed or waiting, the most one user may have (${cap}); retry when they are done`));
    }
    this.pending.set(key, pending + 1);
    const release = () => {
      const left = (this.pending.get(key) ?? 1) - 1;
      if (left === 0) this.pending.delete(key);
      else this.pending.set(key, left);
    };
    return new Promise<Ending<R>>((resolve, reject) => {
      const queue = this.waiting.get(owner) ?? [];
      queue.push({
        owner,
        task,
        settle: (ending) => {
          release();
          resolve(ending as Ending<R>);
        },
        fail: (error) => {
          release();
          reject(error);
        },
      });
      this.waiting.set(owner, queue);
      this.pump();
    });
  }

  /**
   * The first waiting task of the owner whose turn it is: of the owners with the fewest tasks in
   * the threads now, the one served longest ago (an owner not served since it last had nothing
   * pending comes first).
   */
  private takeNext(): Waiting | undefined {
    let chosen: string | undefined;
    const rank = (owner: string) => [this.inThreads.get(owner) ?? 0, this.lastServed.get(owner) ?? -1] as const;
    for (const owner of this.waiting.keys()) {
      if (chosen === undefined) chosen = owner;
      const [threads, served] = rank(owner);
      const [bestThreads, bestServed] = rank(chosen);
      if (threads < bestThreads || (threads === bestThreads && served < bestServed)) chosen = owner;
    }
    if (chosen === undefined) return undefined;
    const queue = this.waiting.get(chosen)!;
    const next = queue.shift()!;
    if (queue.length === 0) this.waiting.delete(chosen);
    this.lastServed.set(chosen, ++this.turns);
    return next;
  }

  private pump(): void {
    while (this.running < this.settings.threads) {
      const next = this.takeNext();
      if (next === undefined) return;
      this.running++;
      this.inThreads.set(next.owner, (this.inThreads.get(next.owner) ?? 0) + 1);
      const abort = new AbortController();
      // The budget counts from when the thread starts the task: a thread that is still loading
      // (after one was stopped for running over) does not count against the next file.
      let timer: NodeJS.Timeout | undefined;
      const { port1, port2 } = new MessageChannel();
      port1.once('message', () => {
        timer = setTimeout(() => abort.abort(), this.settings.budgetMs);
        port1.close();
      });
      this.pool
        .run({ task: next.task, started: port2 }, { signal: abort.signal, transferList: [port2] })
        .then(
          (value: unknown) => next.settle({ ok: true, value }),
          (error: unknown) => {
            // An aborted task's thread is stopped and replaced by piscina.
            if (abort.signal.aborted) next.settle({ ok: false, reason: 'budget' });
            else if ((error as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY') next.settle({ ok: false, reason: 'memory' });
            else next.fail(error);
          },
        )
        .finally(() => {
          clearTimeout(timer);
          port1.close();
          this.running--;
          const left = (this.inThreads.get(next.owner) ?? 1) - 1;
          if (left === 0) this.inThreads.delete(next.owner);
          else this.inThreads.set(next.owner, left);
          if (!this.inThreads.has(next.owner) && !this.waiting.has(next.owner)) this.lastServed.delete(next.owner);
          this.pump();
        });
    }
  }
}
