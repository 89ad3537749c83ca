/**
 * A job's schedule in words, from the text the server compiled (src/schedule/schedule.ts): a
 * 5- or 6-field cron expression, a macro, or an interval; null is a one-off job. Pure, with no
 * imports, so the board needs no cron library and test/web-schedule-words.test.ts runs it in Node.
 * Anything it does not recognise comes back as the expression itself, never as a wrong sentence.
 */

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

const MACROS: Record<string, string> = {
  '@yearly': 'every year on 1 January at 00:00',
  '@annually': 'every year on 1 January at 00:00',
  '@monthly': 'on the 1st of every month at 00:00',
  '@weekly': 'every Sunday at 00:00',
  '@daily': 'every day at 00:00',
  '@midnight': 'every day at 00:00',
  '@hourly': 'every hour, on the hour',
};

const UNITS: Record<string, [string, string]> = { d: ['day', 'days'], h: ['hour', 'hours'], m: ['minute', 'minutes'], s: ['second', 'seconds'], ms: ['millisecond', 'milliseconds'] };


function describeInterval(text: string): string | null {
  const terms = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|d|h|m|s)/g)];
  if (terms.length === 0 || terms.map((t) => t[0]).join('') !== text) return null;
  const parts = terms.map(([, n, unit]) => (Number(n) === 1 ? `1 ${UNITS[unit!]![0]}` : `${n} ${UNITS[unit!]![1]}`));
  return parts.length === 1 && terms[0]![1] === '1' ? `every ${UNITS[terms[0]![2]!]![0]}` : `every ${parts.join(' ')}`;
}

/** A field's values as numbers (names resolved), or null when it is not a plain number. */
function single(field: string, names?: string[]): number | null {
  const upper = field.toUpperCase();
  if (names?.includes(upper)) return names.indexOf(upper);
  return /^\d+$/.test(field) ? Number(field) : null;
}

/** One field in words: `5`, `1-5`, `1,15`, `*\/10`, with names for months and days. */
function values(field: string, word: (n: number) => string, names?: string[]): string | null {
  const parts = field.split(',').map((part) => {
    const [range = '', step] = part.split('/');
    const ends = range.split('-').map((r) => single(r, names));
    if (ends.some((e) => e === null) && range !== '*') return null;
    const span = range === '*' ? '' : ends.length === 2 ? `${word(ends[0]!)}–${word(ends[1]!)}` : word(ends[0]!);
    if (step === undefined) return span;
    if (!/^\d+$/.test(step)) return null;
    return `every ${ordinal(Number(step))}${span === '' ? '' : ` from ${span}`}`;
  });
  return parts.some((p) => p === null) ? null : parts.join(', ');
}

function ordinal(n: number): string {
  if (n === 2) return 'other';
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : ['th', 'st', 'nd', 'rd'][n % 10] ?? 'th';
  return `${n}${suffix}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** The time-of-day part of a cron expression (seconds, minutes, hours). */
function timePart(sec: string, min: string, hour: string): string | null {
  const [s, m, h] = [single(sec), single(min), single(hour)];
  if (s !== null && m !== null && h !== null) return `at ${pad(h)}:${pad(m)}${s === 0 ? '' : `:${pad(s)}`}`;
  const everyN = (f: string) => /^\*\/(\d+)$/.exec(f)?.[1];
  if (sec === '*' && min === '*' && hour === '*') return 'every second';
  if (everyN(sec) && min === '*' && hour === '*') return `every ${everyN(sec)} seconds`;
  const atSecond = s === 0 ? '' : s === null ? null : ` at second ${s}`;
  if (atSecond !== null && hour === '*') {
    if (min === '*') return `every minute${atSecond}`;
    if (everyN(min)) return `every ${everyN(min)} minutes${atSecond}`;
    if (m !== null) return m === 0 && s === 0 ? 'every hour, on the hour' : `every hour at minute ${m}${atSecond}`;
  }
  if (s === 0 && m !== null && everyN(hour)) return `every ${everyN(hour)} hours at minute ${m}`;
  if (s === 0 && m !== null) {
    const hours = values(hour, (n) => `${pad(n)}:${pad(m)}`);
    return hours === null ? null : `at ${hours}`;
  }
  const secs = values(sec, String);
  const mins = values(min, String);
  const hours = values(hour, String);
  if (secs === null || mins === null || hours === null) return null;
  return [sec !== '*' && `second ${secs}`, min !== '*' && `minute ${mins}`, hour !== '*' && `hour ${hours}`].filter(Boolean).join(', ') || 'every second';
}

/** The calendar part (day of month, month, day of week); '' for every day. */
function dayPart(dom: string, month: string, dow: string): string | null {
  const out: string[] = [];
  if (dow !== '*' && dow !== '?') {
    const days = values(dow, (n) => DAYS[n % 7]!, DAY_NAMES);
    if (days === null) return null;
    out.push(`on ${days}`);
  }
  if (dom !== '*' && dom !== '?') {
    const dates = values(dom, (n) => (dom.includes('/') ? String(n) : ordinal(n)));
    if (dates === null) return null;
    out.push(dom.includes('/') ? `on day ${dates} of the month` : `on the ${dates} of the month`);
  }
  if (month !== '*') {
    const months = values(month, (n) => MONTHS[n - 1] ?? String(n), ['', ...MONTH_NAMES]);
    if (months === null) return null;
    out.push(`in ${months}`);
  }
  return out.join(' ');
}

export function describeSchedule(schedule: string | null): string {
  if (schedule === null) return 'as soon as possible (one-off)';
  const text = schedule.trim();
  const lower = text.toLowerCase();
  if (MACROS[lower] !== undefined) return MACROS[lower];
  if (lower.startsWith('@every ')) return describeInterval(text.slice(7).trim()) ?? text;
  const fields = text.split(/\s+/);
  if (fields.length === 1) return describeInterval(text) ?? text;
  if (fields.length !== 5 && fields.length !== 6) return text;
  if (fields.length === 5) fields.unshift('0');
  const [sec, min, hour, dom, month, dow] = fields as [string, string, string, string, string, string];
  const time = timePart(sec, min, hour);
  const days = dayPart(dom, month, dow);
  if (time === null || days === null) return text;
  if (days === '') return time.startsWith('at ') ? `every day ${time}` : time;
  return `${time} ${days}`;
}
