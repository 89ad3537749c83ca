import { describe, expect, it } from 'vitest';
import type { Principal, TokenVerifier } from '../src/auth/types.js';
import { rememberVerified } from '../src/auth/verifier.js';
import { UnauthenticatedError } from '../src/errors.js';

/** A verifier that accepts `ok-<sub>-<exp>` tokens and counts its checks. */
function counting(): TokenVerifier & { checks: number } {
  const v = {
    checks: 0,
    async verify(token: string): Promise<Principal> {
      v.checks++;
      const m = /^ok-(\w+)-(\d+)$/.exec(token);
      if (!m) throw new UnauthenticatedError('invalid token');
      return { sub: m[1]!, exp: Number(m[2]) };
    },
  };
  return v;
}

describe('remembered tokens', () => {
  it('checks a reused token once within a minute', async () => {
    const inner = counting();
    let t = 1_000_000;
    const v = rememberVerified(inner, { now: () => t });
    for (let i = 0; i < 5; i++) expect(await v.verify('ok-alice-9999999')).toEqual({ sub: 'alice', exp: 9999999 });
    expect(inner.checks).toBe(1);
    t += 60_000;
    await v.verify('ok-alice-9999999');
    expect(inner.checks).toBe(2);
  });

  it('never accepts a remembered token at or after its exp', async () => {
    const inner = counting();
    let t = 1_000_000;
    const v = rememberVerified(inner, { now: () => t });
    await v.verify('ok-bob-1010'); // exp 1010 s = 1,010,000 ms
    t = 1_009_999;
    await v.verify('ok-bob-1010');
    expect(inner.checks).toBe(1);
    t = 1_010_000;
    await v.verify('ok-bob-1010');
    expect(inner.checks).toBe(2);
  });

  it('never remembers a refusal', async () => {
    const inner = counting();
    const v = rememberVerified(inner);
    for (let i = 0; i < 3; i++) await expect(v.verify('forged')).rejects.toBeInstanceOf(UnauthenticatedError);
    expect(inner.checks).toBe(3);
  });

  it('keeps at most `max` tokens, forgetting the oldest', async () => {
    const inner = counting();
    const v = rememberVerified(inner, { max: 2 });
    for (const sub of ['a', 'b', 'c']) await v.verify(`ok-${sub}-9999999999`);
    await v.verify('ok-c-9999999999');
    await v.verify('ok-b-9999999999');
    expect(inner.checks).toBe(3);
    await v.verify('ok-a-9999999999');
    expect(inner.checks).toBe(4);
  });

  it('tells tokens apart by their whole text', async () => {
    const inner = counting();
    const v = rememberVerified(inner);
    expect((await v.verify('ok-alice-9999999999')).sub).toBe('alice');
    expect((await v.verify('ok-alicf-9999999999')).sub).toBe('alicf');
    expect(inner.checks).toBe(2);
  });
});
