import type { EditorDiagnostic } from './useValidation';

/**
 * The diagnostics as a list, each naming its line, column and path; choosing one puts the caret
 * there. This list, not the underlines, is what a screen reader hears.
 */
export function DiagnosticsList({ id, diagnostics, onPick }: { id: string; diagnostics: readonly EditorDiagnostic[]; onPick(d: EditorDiagnostic): void }) {
  if (diagnostics.length === 0) return null;
  return (
    <ul id={id} className="diagnostics" data-testid="diagnostics">
      {diagnostics.map((d, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: two diagnostics may share every field
        <li key={i} className={`diagnostic diagnostic-${d.severity}`} data-testid="diagnostic" data-line={d.line} data-column={d.column}>
          <button type="button" className="diagnostic-where" onClick={() => onPick(d)}>
            <span aria-hidden="true">{d.severity === 'error' ? '✕' : '!'}</span> {d.severity} at line {d.line}, column {d.column}
          </button>{' '}
          <span className="diagnostic-message">{d.message}</span> {d.path && <code className="muted">{d.path}</code>}
        </li>
      ))}
    </ul>
  );
}
