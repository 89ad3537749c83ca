/**
 * Validation of the fields of a cron expression, with a message that names the field and
 * the bad value. Accepted per field: `*`, `?`, numbers, ranges `a-b`, steps `*\/n`, `a/n`,
 * `a-b/n`, comma lists; names `JAN`-`DEC` and `SUN`-`SAT`; `L` (last day) in day-of-month;
 * `5L` (last Friday) and `1#2` (second Monday) in day-of-week.
 */

/** One field of a cron expression: its name in messages and its range. */
export interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  /** How to write a valid value, for messages about names. */
  hint?: string;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { name: 'hour', min: 0, max: 23 };
const DAY_OF_MONTH: FieldSpec = { name: 'day-of-month', min: 1, max: 31 };
const MONTH: FieldSpec = { name: 'month', min: 1, max: 12, names: MONTHS, hint: 'use 1-12 or JAN-DEC' };
const DAY_OF_WEEK: FieldSpec = { name: 'day-of-week', min: 0, max: 7, names: DAYS, hint: 'use 0-7 or SUN-SAT' };

/** The six fields in the order of a 6-field expression (seconds first). */
export const CRON_FIELDS: readonly FieldSpec[] = [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK];

class FieldError extends Error {}

function fail(spec: FieldSpec, message: string): never {
  throw new FieldError(`${spec.name} field: ${message}`);
}

function readValue(spec: FieldSpec, token: string): number {
  if (/^\d+$/.test(token)) {
    const value = Number(token);
    if (value < spec.min || value > spec.max) fail(spec, `${token} is out of range ${spec.min}-${spec.max}`);
    return value;
  }
  if (/^H/i.test(token)) fail(spec, `"${token}" (a hashed value) is not supported`);
  if (spec.names !== undefined) {
    const index = spec.names.indexOf(token.toUpperCase());
    if (index >= 0) return spec === MONTH ? index + 1 : index;
    fail(spec, `"${token}" is not a ${spec === MONTH ? 'month' : 'day of the week'} (${spec.hint})`);
  }
  return fail(spec, `"${token}" is not a number`);
}

function checkStep(spec: FieldSpec, step: string): void {
  const width = spec.max - spec.min + 1;
  if (!/^\d+$/.test(step) || Number(step) < 1 || Number(step) > width) {
    fail(spec, `step "${step}" must be a whole number from 1 to ${width}`);
  }
}

function checkItem(spec: FieldSpec, item: string): void {
  if (item === '') fail(spec, 'empty item in the list');
  if (spec === DAY_OF_MONTH && item.toUpperCase() === 'L') return;
  if (spec === DAY_OF_WEEK) {
    const last = /^(\w+)L$/i.exec(item);
    if (last !== null) {
      readValue(spec, last[1]!);
      return;
    }
    const nth = /^(\w+)#(.*)$/.exec(item);
    if (nth !== null) {
      readValue(spec, nth[1]!);
      if (!/^[1-5]$/.test(nth[2]!)) fail(spec, `"#${nth[2]}" must be #1 to #5 (the week of the month)`);
      return;
    }
  }
  const slash = item.indexOf('/');
  const base = slash >= 0 ? item.slice(0, slash) : item;
  if (slash >= 0) checkStep(spec, item.slice(slash + 1));
  if (base === '*' || base === '?') return;
  const dash = base.indexOf('-', 1);
  if (dash < 0) {
    readValue(spec, base);
    return;
  }
  const from = readValue(spec, base.slice(0, dash));
  const to = readValue(spec, base.slice(dash + 1));
  if (from > to) fail(spec, `range ${base} goes backwards (${from} > ${to})`);
}

/**
 * Checks one field; returns null when it is valid, otherwise a message such as
 * `minute field: 61 is out of range 0-59`.
 */
export function checkCronField(spec: FieldSpec, text: string): string | null {
  try {
    for (const item of text.split(',')) checkItem(spec, item);
    return null;
  } catch (error) {
    if (error instanceof FieldError) return error.message;
    throw error;
  }
}
