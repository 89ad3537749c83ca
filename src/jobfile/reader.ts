import { isAlias, isMap, isScalar, isSeq, type Node, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { parseDuration } from '../schedule/duration.js';
import { childPath, diagnosticAt } from './diagnostics.js';
import type { ParsedJobFile } from './parse.js';
import { suggest } from './suggest.js';
import type { Diagnostic } from './types.js';

/** A value of the document with where to report about it. */
export interface Field {
  /** The node, aliases followed; null when the key has no value. */
  node: Node | null;
  path: string;
  /** The key's name, used in messages; the path's last segment. */
  label: string;
  /** Offset to report a bad value at: the value, or the key when the value is empty. */
  at: number;
  /** Offset of the key (of the item, in a list), to report a bad key at. */
  keyAt: number;
}

/** Reads typed values out of a parsed job file, recording a diagnostic for each problem. */
export class Reader {
  readonly diagnostics: Diagnostic[] = [];
  #errors = 0;

  constructor(readonly file: ParsedJobFile) {}

  error(at: number, path: string, message: string): void {
    this.#errors++;
    this.diagnostics.push(diagnosticAt(this.file.lineCounter, at, path, message));
  }

  warn(at: number, path: string, message: string): void {
    this.diagnostics.push(diagnosticAt(this.file.lineCounter, at, path, message, 'warning'));
  }

  /** How many errors (not warnings) were recorded so far. */
  get errorCount(): number {
    return this.#errors;
  }

  resolve(node: unknown): Node | null {
    if (isAlias(node)) return this.file.aliases.get(node) ?? null;
    return isMap(node) || isSeq(node) || isScalar(node) ? node : null;
  }

  /** A field for `node`; `fallback` is where to point when the node is empty. */
  field(node: unknown, path: string, label: string, fallback: number): Field {
    const raw = isAlias(node) || isMap(node) || isSeq(node) || isScalar(node) ? node : null;
    const start = raw?.range?.[0];
    const empty = raw === null || (isScalar(raw) && raw.value === null && raw.range![0] === raw.range![1]);
    const at = empty || start === undefined ? fallback : start;
    return { node: this.resolve(node), path, label, at, keyAt: fallback };
  }

  /**
   * The entries of a mapping by key. Reports keys that are not strings, duplicate keys and,
   * when `allowed` is given, unknown keys (with a "did you mean" when one is close).
   */
  entries(map: YAMLMap, path: string, allowed?: readonly string[]): Map<string, Field> {
    const out = new Map<string, Field>();
    for (const pair of map.items) {
      const key = this.resolve(pair.key);
      const keyAt = (pair.key as Node | null)?.range?.[0] ?? map.range?.[0] ?? 0;
      if (!isScalar(key) || typeof key.value !== 'string' || key.value === '') {
        this.error(keyAt, path, `keys must be non-empty strings, got ${describe(key)}`);
        continue;
      }
      const name = key.value;
      const keyPath = childPath(path, name);
      if (out.has(name)) {
        this.error(keyAt, keyPath, `duplicate key "${name}"`);
        continue;
      }
      if (allowed !== undefined && !allowed.includes(name)) {
        const close = suggest(name, allowed);
        this.error(keyAt, keyPath, `unknown key "${name}"${close === undefined ? '' : `; did you mean "${close}"?`}`);
        continue;
      }
      out.set(name, this.field(pair.value, keyPath, name, keyAt));
    }
    return out;
  }

  /** Reports `message` about `field` with what was found instead, and returns undefined. */
  wrong(field: Field, expected: string): undefined {
    this.error(field.at, field.path, `${field.label} must be ${expected}, got ${describe(field.node)}`);
    return undefined;
  }

  map(field: Field, expected = 'a mapping'): YAMLMap | undefined {
    return isMap(field.node) ? field.node : this.wrong(field, expected);
  }

  list(field: Field, expected = 'a list'): YAMLSeq | undefined {
    return isSeq(field.node) ? field.node : this.wrong(field, expected);
  }

  /** The items of a list as fields named `label[i]`. */
  items(list: YAMLSeq, field: Field): Field[] {
    return list.items.map((item, i) => {
      const itemAt = (item as Node | null)?.range?.[0] ?? field.at;
      return this.field(item, childPath(field.path, i), `${field.label}[${i}]`, itemAt);
    });
  }

  string(field: Field, expected = 'a string'): string | undefined {
    return isScalar(field.node) && typeof field.node.value === 'string' ? field.node.value : this.wrong(field, expected);
  }

  /** A string that is not blank, trimmed unless `trim` is false. */
  text(field: Field, trim = true): string | undefined {
    const value = this.string(field, 'a non-empty string');
    if (value === undefined) return undefined;
    if (value.trim() === '') return this.wrong(field, 'a non-empty string');
    return trim ? value.trim() : value;
  }

  boolean(field: Field): boolean | undefined {
    return isScalar(field.node) && typeof field.node.value === 'boolean' ? field.node.value : this.wrong(field, 'true or false');
  }

  integer(field: Field, min: number, max: number): number | undefined {
    const value = isScalar(field.node) ? field.node.value : undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    return this.wrong(field, `a whole number from ${min} to ${max}`);
  }

  oneOf<T extends string>(field: Field, values: readonly T[]): T | undefined {
    const value = isScalar(field.node) ? field.node.value : undefined;
    if (typeof value === 'string' && (values as readonly string[]).includes(value)) return value as T;
    const close = typeof value === 'string' ? suggest(value, values) : undefined;
    const hint = close === undefined ? '' : ` (did you mean "${close}"?)`;
    this.error(field.at, field.path, `${field.label} must be one of ${values.join(', ')}, got ${describe(field.node)}${hint}`);
    return undefined;
  }

  /** A duration string such as `30m`, as milliseconds, at most `maxMs`. */
  duration(field: Field, maxMs: number, maxText: string): number | undefined {
    if (!isScalar(field.node) || typeof field.node.value !== 'string') {
      return this.wrong(field, 'a duration with a unit, such as 30m or 1h30m');
    }
    const parsed = parseDuration(field.node.value);
    if (!parsed.ok) return void this.error(field.at, field.path, `${field.label}: ${parsed.error}`);
    if (parsed.value > maxMs) return void this.error(field.at, field.path, `${field.label} must be at most ${maxText}`);
    return parsed.value;
  }

  /** A scalar as an environment value: numbers and booleans keep their written form. */
  scalarText(field: Field): string | undefined {
    const node = field.node;
    if (isScalar(node) && typeof node.value === 'string') return node.value;
    if (isScalar(node) && (typeof node.value === 'number' || typeof node.value === 'boolean')) {
      return (node as Scalar & { source?: string }).source ?? String(node.value);
    }
    return this.wrong(field, 'a string, number or boolean (quote "" for an empty value)');
  }
}

/** The field of `key` unless it is absent or null, which both mean "use the default". */
export function given(fields: ReadonlyMap<string, Field>, key: string): Field | undefined {
  const field = fields.get(key);
  if (field === undefined || field.node === null) return undefined;
  return isScalar(field.node) && field.node.value === null ? undefined : field;
}

/** What a node is, for messages: `a list`, `"echo"`, `the number 5`, `null`. */
export function describe(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (!isScalar(node) || node.value === null || node.value === undefined) return 'nothing (null)';
  const value = node.value;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number') return `the number ${(node as Scalar & { source?: string }).source ?? value}`;
  if (typeof value === 'boolean') return String(value);
  return 'an unsupported value';
}
