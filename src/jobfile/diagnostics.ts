import type { LineCounter } from 'yaml';
import type { Diagnostic } from './types.js';

/** A diagnostic at a character offset of the file, with 1-based line and column. */
export function diagnosticAt(
  lineCounter: LineCounter,
  offset: number,
  path: string,
  message: string,
  severity: Diagnostic['severity'] = 'error',
): Diagnostic {
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col, path, message, severity };
}

/** Sorts by position, keeping the order of diagnostics found at the same place. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => a.line - b.line || a.column - b.column);
}

/** The path of a child: `jobs[0]` + `steps` = `jobs[0].steps`; odd keys are quoted. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}
