import { describe, expect, it } from 'vitest';
import { globBase, globRegExp, parseKeyTemplate } from '../src/jobfile/cache.js';
import { compileJobFile, toExecutionPlan } from '../src/jobfile/compile.js';
import type { Diagnostic } from '../src/jobfile/types.js';

/** A job file whose one job has `cache:` as the given lines (indented under the job). */
function withCache(...lines: string[]): string {
  return ['jobs:', '  - name: Build', '    cache:', ...lines.map((l) => `      ${l}`), '    steps:', '      - run: go build ./...', ''].join('\n');
}

function problems(source: string): Array<Pick<Diagnostic, 'line' | 'column' | 'path' | 'message'>> {
  const result = compileJobFile(source);
  if (result.ok) throw new Error('expected the file to be rejected');
  return result.diagnostics.map(({ line, column, path, message }) => ({ line, column, path, message }));
}

describe('cache: in the job file (issue 13, item 3)', () => {
  it('compiles key, restore_keys and normalised paths into the job and its execution plan', () => {
    const result = compileJobFile(
      withCache('key: go-{{ os }}-{{ hashFiles "go.sum" "**/go.mod" }}', "restore_keys: ['go-{{ os }}-', go-]", 'paths: [/root/go/pkg/mod/, /root/.cache//go-build, /workspace/./vendor, /root/go/pkg/mod]'),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const cache = { key: 'go-{{ os }}-{{ hashFiles "go.sum" "**/go.mod" }}', restoreKeys: ['go-{{ os }}-', 'go-'], paths: ['/root/go/pkg/mod', '/root/.cache/go-build', '/workspace/vendor'] };
    expect(result.jobs[0]!.cache).toEqual(cache);
    expect(toExecutionPlan(result.jobs[0]!, { image: 'x' }).cache).toEqual(cache);
  });

  it('leaves a job without cache: with none', () => {
    const result = compileJobFile('jobs:\n  - name: A\n    steps: [{ run: "true" }]\n');
    expect(result.ok && 'cache' in result.jobs[0]! ? 'has cache' : 'none').toBe('none');
  });

  it.each([
    ['an unknown template function, at its name', 'key: go-{{ hashFile "go.sum" }}', 4, 18, 'jobs[0].cache.key', 'unknown template function "hashFile": use hashFiles, os or job'],
    ['an unclosed template', "key: 'go-{{ os'", 4, 16, 'jobs[0].cache.key', '"{{" is not closed with "}}"'],
    ['hashFiles without a glob', 'key: a-{{ hashFiles }}', 4, 17, 'jobs[0].cache.key', 'hashFiles needs at least one glob: {{ hashFiles "go.sum" }}'],
    ['an unquoted glob', 'key: a-{{ hashFiles go.sum }}', 4, 27, 'jobs[0].cache.key', 'expected a quoted glob such as "go.sum", got go.sum'],
    ['a glob leaving the workspace', 'key: a-{{ hashFiles "../secret" }}', 4, 27, 'jobs[0].cache.key', '"../secret" leaves the workspace with ".."'],
    ['an absolute glob', 'key: a-{{ hashFiles "/etc/passwd" }}', 4, 27, 'jobs[0].cache.key', '"/etc/passwd" is absolute; globs are relative to the workspace'],
    ['a space in the key text', "key: 'go mod'", 4, 15, 'jobs[0].cache.key', '" " is not allowed in a cache key (letters, digits and . _ - / + = :)'],
    ['an unknown function in a restore key', "key: k\nrestore_keys: ['a-{{ branch }}']", 5, 28, 'jobs[0].cache.restore_keys[0]', 'unknown template function "branch": use hashFiles, os or job'],
  ])('refuses %s with line and column', (_what, line, l, c, path, message) => {
    expect(problems(withCache(...line.split('\n'), 'paths: [/root/go]'))).toEqual([{ line: l, column: c, path, message }]);
  });

  it.each([
    ['a path outside the workspace and the homes', '/etc', '"/etc" is outside the workspace and the home directories: cache paths must be under /workspace, /root or /home/NAME'],
    ['a relative path', 'go/pkg', '"go/pkg" is not absolute: cache paths are absolute paths in the container, under /workspace or a home directory (/root, /home/NAME)'],
    ['a path climbing out with ..', '/root/../etc', '"/root/../etc" must not contain ".."'],
    ['/home itself', '/home', '"/home" is outside the workspace and the home directories: cache paths must be under /workspace, /root or /home/NAME'],
    ['a prefix that only looks like a home', '/rootkit', '"/rootkit" is outside the workspace and the home directories: cache paths must be under /workspace, /root or /home/NAME'],
  ])('refuses %s at lint, at the path', (_what, path, message) => {
    expect(problems(withCache('key: k', `paths: [/root/ok, ${path}]`))).toEqual([{ line: 5, column: 25, path: 'jobs[0].cache.paths[1]', message }]);
  });

  it('names unknown keys of cache: and the missing ones', () => {
    expect(problems(withCache('keys: k', 'path: [/root/go]'))).toEqual([
      { line: 4, column: 7, path: 'jobs[0].cache.keys', message: 'unknown key "keys"; did you mean "key"?' },
      { line: 4, column: 7, path: 'jobs[0].cache.key', message: 'missing required key "key": a template such as go-{{ hashFiles "go.sum" }}' },
      { line: 4, column: 7, path: 'jobs[0].cache.paths', message: 'missing required key "paths": the directories to cache' },
      { line: 5, column: 7, path: 'jobs[0].cache.path', message: 'unknown key "path"; did you mean "paths"?' },
    ]);
  });

  it('matches globs within segments, and ** across them', () => {
    expect(globRegExp('go.sum').test('go.sum')).toBe(true);
    expect(globRegExp('go.sum').test('sub/go.sum')).toBe(false);
    expect(globRegExp('**/go.sum').test('go.sum')).toBe(true);
    expect(globRegExp('**/go.sum').test('a/b/go.sum')).toBe(true);
    expect(globRegExp('*.sum').test('a/x.sum')).toBe(false);
    expect(globRegExp('src/*.go').test('src/main.go')).toBe(true);
    expect(globRegExp('go.sum').test('goXsum')).toBe(false);
    expect(globBase('src/**/*.go')).toBe('src');
    expect(globBase('**/go.sum')).toBe('');
    expect(globBase('./go.sum')).toBe('go.sum');
    expect(parseKeyTemplate('a-{{job}}-{{ os }}')).toEqual({ parts: [{ text: 'a-' }, { fn: 'job' }, { text: '-' }, { fn: 'os' }] });
  });
});
