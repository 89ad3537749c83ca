import { describe, expect, it } from 'vitest';
import type { Fence } from '../src/executions/fence.js';
import { RunRegistry, type StopReason } from '../src/worker/run/RunRegistry.js';

function held(registry: RunRegistry, id: string, attempt = 1): { fence: Fence; stops: Array<[StopReason, string]> } {
  const fence = { id, attempt, workerId: 'w1' };
  const stops: Array<[StopReason, string]> = [];
  registry.hold(fence, (reason, message) => stops.push([reason, message]));
  return { fence, stops };
}

describe('RunRegistry', () => {
  it('stops a run whose claim is lost once, and no longer renews its claim, while its container stays its own', () => {
    const runs = new RunRegistry();
    const a = held(runs, 'a');
    const b = held(runs, 'b');
    runs.lose(a.fence, 'gone elsewhere');
    runs.lose(a.fence, 'gone elsewhere');
    expect(a.stops).toEqual([['LOST', 'gone elsewhere']]);
    expect(runs.claims()).toEqual([b.fence]);
    expect(runs.holds(a.fence)).toBe(false);
    expect(runs.has('a')).toBe(true);
    expect(runs.size).toBe(2);
  });

  it('delivers a cancel once, and only to a run held here', () => {
    const runs = new RunRegistry();
    const a = held(runs, 'a');
    expect(runs.cancel('a')).toBe(true);
    expect(runs.cancel('a')).toBe(true);
    expect(runs.cancel('elsewhere')).toBe(false);
    expect(a.stops).toEqual([['CANCELLED', 'cancelled']]);
  });

  it('counts a released run as no longer running, but keeps its container its own until it is forgotten', () => {
    const runs = new RunRegistry();
    const a = held(runs, 'a');
    runs.release(a.fence, true);
    expect(runs.size).toBe(0);
    expect(runs.holds(a.fence)).toBe(false);
    expect(runs.claims()).toEqual([]);
    expect(runs.has('a')).toBe(true);
    runs.forget(a.fence);
    expect(runs.has('a')).toBe(false);
  });

  it("keeps a lost attempt's run apart from the next attempt of the same execution held here meanwhile", () => {
    const runs = new RunRegistry();
    const first = held(runs, 'e', 1);
    runs.lose(first.fence, 'lease expired');
    const second = held(runs, 'e', 2);
    // The first attempt winds down: releasing and forgetting it leave the second one's claim alone.
    runs.release(first.fence, false);
    runs.forget(first.fence);
    expect(runs.holds(second.fence)).toBe(true);
    expect(runs.claims()).toEqual([second.fence]);
    expect(runs.has('e')).toBe(true);
    expect(runs.cancel('e')).toBe(true);
    expect(second.stops).toEqual([['CANCELLED', 'cancelled']]);
  });

  it('tells each holder as it is held (the cancel check and the lease watchdog)', () => {
    const runs = new RunRegistry();
    const seen: string[] = [];
    runs.onHold((fence) => seen.push(fence.id));
    held(runs, 'a');
    held(runs, 'b');
    expect(seen).toEqual(['a', 'b']);
  });

  it('at shutdown keeps renewing the claims it stops, and hands back only runs released with their containers gone', async () => {
    const runs = new RunRegistry();
    const gone = held(runs, 'gone');
    const stuck = held(runs, 'stuck');
    const forgotten = held(runs, 'forgotten');
    const stopping = runs.stopAll('shutting down', 10_000);
    expect(runs.claims()).toHaveLength(3);
    expect(runs.shutdownDeadline).not.toBeNull();
    expect([gone, stuck, forgotten].map((r) => r.stops)).toEqual([
      [['LOST', 'shutting down']],
      [['LOST', 'shutting down']],
      [['LOST', 'shutting down']],
    ]);
    runs.release(gone.fence, true);
    runs.release(stuck.fence, false);
    runs.forget(forgotten.fence); // never released: its container may still run
    expect(await stopping).toEqual([gone.fence]);
  });

  it('gives up waiting for a run that does not end within the wait', async () => {
    const runs = new RunRegistry();
    held(runs, 'slow');
    expect(await runs.stopAll('shutting down', 50)).toEqual([]);
  });
});
