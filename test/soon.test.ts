import { describe, expect, it } from 'vitest';
import { Soon } from '../src/util/soon.js';

/** util/soon.ts: what the dispatcher's wake-ups and the finisher's sends rely on. */
const turn = () => new Promise((resolve) => setImmediate(resolve));
const ms = (n: number) => new Promise((resolve) => setTimeout(resolve, n));

describe('Soon', () => {
  it('runs once for every request of one turn, after the turn is over', async () => {
    let calls = 0;
    const soon = new Soon(() => calls++);
    soon.request();
    soon.request();
    soon.request(50); // joins the pending call: it does not delay it
    expect(calls).toBe(0);
    expect(soon.pending).toBe(true);
    await turn();
    expect(calls).toBe(1);
    expect(soon.pending).toBe(false);
    soon.request();
    await turn();
    expect(calls).toBe(2);
  });

  it('waits the delay it was asked for, unless asked for sooner', async () => {
    let calls = 0;
    const soon = new Soon(() => calls++);
    soon.request(40);
    soon.request(10_000); // asks for later: joins the pending call, which keeps its time
    await ms(10);
    expect(calls).toBe(0);
    await ms(80);
    expect(calls).toBe(1);

    soon.request(10_000);
    soon.request(); // asks for sooner: brings the pending call forward
    await turn();
    expect(calls).toBe(2);
    await ms(20);
    expect(calls).toBe(2);
  });
});
