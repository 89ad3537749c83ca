import type { ParseResult } from './result.js';

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;

const HINT = 'write numbers with units (d, h, m, s, ms), e.g. 30s, 10m or 1h30m';

/**
 * Parses a Go-like duration such as `1h30m`, `30s`, `500ms`, `2h` or `1d` into milliseconds.
 * Terms may be combined and may have decimals (`1.5h`); the total is rounded to the
 * millisecond and must be greater than zero.
 */
export function parseDuration(text: string): ParseResult<number> {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, error: `the duration is empty; ${HINT}` };
  // `ms` comes before `m` so that `500ms` is not read as minutes followed by garbage.
  const term = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/y;
  let total = 0;
  while (term.lastIndex < trimmed.length) {
    const at = term.lastIndex;
    const match = term.exec(trimmed);
    if (match === null) {
      const rest = trimmed.slice(at);
      const noUnit = /^\d+(?:\.\d+)?$/.test(rest);
      if (at === 0) return { ok: false, error: `"${trimmed}" ${noUnit ? 'has no unit' : 'is not a duration'}; ${HINT}` };
      const why = noUnit ? `"${rest}" has no unit` : `"${rest}" is not understood`;
      return { ok: false, error: `"${trimmed}" is not a duration (${why}); ${HINT}` };
    }
    total += Number(match[1]) * UNIT_MS[match[2] as Unit];
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) return { ok: false, error: `"${trimmed}" is too long a duration` };
  if (ms <= 0) return { ok: false, error: `"${trimmed}" is not a positive duration` };
  return { ok: true, value: ms };
}

/**
 * Formats milliseconds the way `parseDuration` reads them: `1h30m`, `500ms`, `1d2h`, `0s`.
 * `parseDuration(formatDuration(ms))` gives back `ms` for every positive integer.
 */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`cannot format ${ms} ms as a duration`);
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms'] as const) {
    const count = Math.floor(rest / UNIT_MS[unit]);
    if (count > 0) out += `${count}${unit}`;
    rest -= count * UNIT_MS[unit];
  }
  return out;
}
