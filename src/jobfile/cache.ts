import { Scalar } from 'yaml';
import { Reader, given, type Field } from './reader.js';
import type { CacheSpec } from './types.js';

/** Most `restore_keys` a job may list, and most paths it may cache. */
export const MAX_CACHE_RESTORE_KEYS = 10;
export const MAX_CACHE_PATHS = 20;
/** Longest key template, and longest key once rendered (a hash is 64 characters). */
export const MAX_CACHE_KEY_LENGTH = 512;
/** Most globs one `hashFiles` may take. */
const MAX_GLOBS = 20;

/**
 * Where cached paths may be: the workspace, or a home directory (the writable homes of a
 * container on a read-only root, docs/design.md#build-caches). Anything else is either read-only
 * in the container or outside what the job owns.
 */
export const CACHE_ROOTS = ['/workspace', '/root', '/home'] as const;

const CACHE_KEYS = ['key', 'restore_keys', 'paths'] as const;

/** One piece of a key template: plain text, or a function written between `{{` and `}}`. */
export type KeyPart =
  | { text: string }
  | { fn: 'hashFiles'; globs: string[] }
  | { fn: 'os' }
  | { fn: 'job' };

/** A template problem at `index` (0-based, in the template's characters). */
export interface TemplateProblem {
  index: number;
  message: string;
}

const FUNCTIONS = ['hashFiles', 'os', 'job'];

/** Characters a rendered key keeps; anything else in the literal text is refused at lint. */
const KEY_TEXT = /^[A-Za-z0-9._\-/+=:]*$/;

/**
 * Parses a key template: literal text with `{{ hashFiles "glob" ... }}`, `{{ os }}` and `{{ job }}`.
 * Globs are relative to the workspace (`*`, `?`, and `**` for any depth).
 */
export function parseKeyTemplate(template: string): { parts: KeyPart[] } | { problem: TemplateProblem } {
  const parts: KeyPart[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    const text = template.slice(i, open < 0 ? template.length : open);
    if (text !== '') {
      const bad = [...text].findIndex((c) => !KEY_TEXT.test(c));
      if (bad >= 0) return { problem: { index: i + bad, message: `"${text[bad]}" is not allowed in a cache key (letters, digits and . _ - / + = :)` } };
      if (text.includes('}}')) return { problem: { index: i + text.indexOf('}}'), message: '"}}" closes no "{{"' } };
      parts.push({ text });
    }
    if (open < 0) break;
    const close = template.indexOf('}}', open + 2);
    if (close < 0) return { problem: { index: open, message: '"{{" is not closed with "}}"' } };
    const part = parseCall(template.slice(open + 2, close), open + 2);
    if ('problem' in part) return part;
    parts.push(part.part);
    i = close + 2;
  }
  if (parts.length === 0) return { problem: { index: 0, message: 'the cache key is empty' } };
  return { parts };
}

/** One `{{ ... }}`: a known function and its quoted arguments. */
function parseCall(body: string, at: number): { part: KeyPart } | { problem: TemplateProblem } {
  const name = /^\s*([A-Za-z_]\w*)/.exec(body);
  if (name === null) return { problem: { index: at, message: 'expected a function name: hashFiles, os or job' } };
  const nameAt = at + body.indexOf(name[1]!);
  if (!FUNCTIONS.includes(name[1]!)) {
    return { problem: { index: nameAt, message: `unknown template function "${name[1]}": use hashFiles, os or job` } };
  }
  const args: string[] = [];
  const rest = /\s*"([^"]*)"|\s*(\S+)/gy;
  rest.lastIndex = name[0].length;
  for (let m = rest.exec(body); m !== null; m = rest.exec(body)) {
    const argAt = at + m.index + m[0].length - m[0].trimStart().length;
    if (m[2] !== undefined) return { problem: { index: argAt, message: `expected a quoted glob such as "go.sum", got ${m[2]}` } };
    const problem = globProblem(m[1]!);
    if (problem !== null) return { problem: { index: argAt, message: problem } };
    args.push(m[1]!);
  }
  if (name[1] === 'hashFiles') {
    if (args.length === 0) return { problem: { index: nameAt, message: 'hashFiles needs at least one glob: {{ hashFiles "go.sum" }}' } };
    if (args.length > MAX_GLOBS) return { problem: { index: nameAt, message: `hashFiles takes at most ${MAX_GLOBS} globs` } };
    return { part: { fn: 'hashFiles', globs: args } };
  }
  if (args.length > 0) return { problem: { index: nameAt, message: `${name[1]} takes no argument` } };
  return { part: { fn: name[1] as 'os' | 'job' } };
}

/** Why `glob` cannot name files of the workspace, or null. */
function globProblem(glob: string): string | null {
  if (glob.trim() === '') return 'a glob must not be empty';
  if (glob.startsWith('/')) return `"${glob}" is absolute; globs are relative to the workspace`;
  if (glob.split('/').includes('..')) return `"${glob}" leaves the workspace with ".."`;
  if (/[\\\0]/.test(glob)) return `"${glob}" holds a backslash or NUL`;
  return null;
}

/** A glob as a regular expression over workspace-relative paths: `*` and `?` stay within a segment. */
export function globRegExp(glob: string): RegExp {
  let source = '';
  const g = glob.replace(/^\.\//, '');
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === '*' && g[i + 1] === '*') {
      // `**/` matches no directory too.
      source += g[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += g[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** The part of a glob before its first wildcard segment: the one directory (or file) to read. */
export function globBase(glob: string): string {
  const segments = glob.replace(/^\.\//, '').split('/');
  const fixed: string[] = [];
  for (const s of segments) {
    if (/[*?]/.test(s)) break;
    fixed.push(s);
  }
  return fixed.join('/');
}

/** Normalises a cache path, or says why it cannot be cached. */
export function cachePathProblem(raw: string): { path: string } | { problem: string } {
  if (!raw.startsWith('/')) return { problem: `"${raw}" is not absolute: cache paths are absolute paths in the container, under /workspace or a home directory (/root, /home/NAME)` };
  if (raw.split('/').includes('..')) return { problem: `"${raw}" must not contain ".."` };
  if (/[\0\n\\]/.test(raw)) return { problem: `"${raw}" holds a backslash, newline or NUL` };
  const path = raw.replace(/\/+/g, '/').replace(/\/\.(?=\/|$)/g, '').replace(/(.)\/$/, '$1');
  const root = CACHE_ROOTS.find((r) => path === r || path.startsWith(`${r}/`));
  if (root === undefined || (root === '/home' && path === '/home')) {
    return { problem: `"${raw}" is outside the workspace and the home directories: cache paths must be under /workspace, /root or /home/NAME` };
  }
  return { path };
}

/** Offset of character `index` of a scalar's text in the file (past an opening quote). */
function offsetIn(field: Field, index: number): number {
  const node = field.node;
  const quoted = node instanceof Scalar && (node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE);
  return field.at + (quoted ? 1 : 0) + index;
}

function lintTemplate(r: Reader, field: Field): string | undefined {
  const template = r.string(field);
  if (template === undefined) return undefined;
  if (template.length > MAX_CACHE_KEY_LENGTH) return void r.error(field.at, field.path, `a cache key may be at most ${MAX_CACHE_KEY_LENGTH} characters long`);
  const parsed = parseKeyTemplate(template);
  if ('problem' in parsed) return void r.error(offsetIn(field, parsed.problem.index), field.path, parsed.problem.message);
  return template;
}

/**
 * `cache:` of a job (docs/design.md#build-caches): `key` (a template), `restore_keys` (prefixes
 * tried in order when the key misses) and `paths` (absolute, under the workspace or a home).
 */
export function lintCache(r: Reader, field: Field): CacheSpec | undefined {
  const map = r.map(field, 'a mapping with "key", "paths" and optionally "restore_keys"');
  if (map === undefined) return undefined;
  const errorsBefore = r.errorCount;
  const fields = r.entries(map, field.path, CACHE_KEYS);
  const keyField = given(fields, 'key');
  const pathsField = given(fields, 'paths');
  if (keyField === undefined) r.error(map.range![0], `${field.path}.key`, 'missing required key "key": a template such as go-{{ hashFiles "go.sum" }}');
  if (pathsField === undefined) r.error(map.range![0], `${field.path}.paths`, 'missing required key "paths": the directories to cache');
  const key = keyField === undefined ? undefined : lintTemplate(r, keyField);
  const restoreKeys: string[] = [];
  const restoreField = given(fields, 'restore_keys');
  if (restoreField !== undefined) {
    const list = r.list(restoreField, 'a list of key prefixes');
    if (list !== undefined && list.items.length > MAX_CACHE_RESTORE_KEYS) {
      r.error(restoreField.at, restoreField.path, `restore_keys may list at most ${MAX_CACHE_RESTORE_KEYS} prefixes`);
    } else if (list !== undefined) {
      for (const item of r.items(list, restoreField)) {
        const prefix = lintTemplate(r, item);
        if (prefix !== undefined) restoreKeys.push(prefix);
      }
    }
  }
  const paths: string[] = [];
  const list = pathsField === undefined ? undefined : r.list(pathsField, 'a list of absolute paths');
  if (list !== undefined && pathsField !== undefined) {
    if (list.items.length === 0) r.error(pathsField.at, pathsField.path, 'paths must list at least one path');
    if (list.items.length > MAX_CACHE_PATHS) r.error(pathsField.at, pathsField.path, `a cache may hold at most ${MAX_CACHE_PATHS} paths`);
    for (const item of r.items(list, pathsField)) {
      const raw = r.string(item);
      if (raw === undefined) continue;
      const normal = cachePathProblem(raw);
      if ('problem' in normal) r.error(item.at, item.path, normal.problem);
      else if (!paths.includes(normal.path)) paths.push(normal.path);
    }
  }
  if (r.errorCount !== errorsBefore || key === undefined) return undefined;
  return { key, restoreKeys, paths };
}
