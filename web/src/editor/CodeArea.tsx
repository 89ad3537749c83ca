import { forwardRef, useRef, type ChangeEvent, type UIEvent } from 'react';
import type { EditorDiagnostic } from './useValidation';
import './CodeArea.css';

interface Props {
  value: string;
  onChange(value: string): void;
  diagnostics: readonly EditorDiagnostic[];
  /** Whether `diagnostics` belong to `value` as it is now (marks are hidden while a check is pending). */
  current: boolean;
  labelledBy: string;
  describedBy: string;
}

/** The span of a line a diagnostic marks: from its column to the end of the token there. */
function markedSpan(line: string, column: number): [number, number] {
  const start = Math.min(Math.max(column - 1, 0), line.length);
  const quote = line[start];
  if (quote === '"' || quote === "'") {
    const close = line.indexOf(quote, start + 1);
    return [start, close < 0 ? line.length : close + 1];
  }
  const rest = line.slice(start).search(/[\s:,\]}]|$/);
  return [start, Math.max(start + Math.max(rest, 1), start + 1)];
}

/**
 * A plain textarea with a line-number gutter and, behind the text, an overlay that underlines
 * each diagnostic at its line and column. The overlay mirrors the textarea's font and scroll and
 * does not wrap, so its lines stay under the textarea's.
 */
export const CodeArea = forwardRef<HTMLTextAreaElement, Props>(function CodeArea({ value, onChange, diagnostics, current, labelledBy, describedBy }, ref) {
  const gutter = useRef<HTMLDivElement>(null);
  const overlay = useRef<HTMLPreElement>(null);
  const lines = value.split('\n');
  const byLine = new Map<number, EditorDiagnostic[]>();
  if (current) for (const d of diagnostics) byLine.set(d.line, [...(byLine.get(d.line) ?? []), d]);

  const onScroll = (e: UIEvent<HTMLTextAreaElement>) => {
    const { scrollTop, scrollLeft } = e.currentTarget;
    if (gutter.current) gutter.current.scrollTop = scrollTop;
    if (overlay.current) {
      overlay.current.scrollTop = scrollTop;
      overlay.current.scrollLeft = scrollLeft;
    }
  };

  return (
    <div className="code-area">
      <div className="code-gutter" ref={gutter} aria-hidden="true" data-testid="gutter">
        {lines.map((_, i) => {
          const here = byLine.get(i + 1);
          const severity = here?.some((d) => d.severity === 'error') ? 'error' : here ? 'warning' : undefined;
          return (
            // biome-ignore lint/suspicious/noArrayIndexKey: a line's number is its identity
            <div key={i} className={`code-line-number${severity ? ` code-line-${severity}` : ''}`} data-line={i + 1} data-diagnostic={severity}>
              {severity === 'error' ? '✕ ' : severity ? '! ' : ''}
              {i + 1}
            </div>
          );
        })}
      </div>
      <div className="code-body">
        <pre className="code-overlay" ref={overlay} aria-hidden="true">
          {lines.map((line, i) => {
            const here = byLine.get(i + 1);
            if (!here) return `${line}\n`;
            const [start, end] = markedSpan(line, Math.min(...here.map((d) => d.column)));
            return (
              // biome-ignore lint/suspicious/noArrayIndexKey: a line's number is its identity
              <span key={i}>
                {line.slice(0, start)}
                <mark className={`code-mark code-mark-${here[0]!.severity}`} data-line={i + 1} data-column={start + 1}>
                  {line.slice(start, end) || ' '}
                </mark>
                {`${line.slice(end)}\n`}
              </span>
            );
          })}
        </pre>
        <textarea
          ref={ref}
          className="code-text"
          value={value}
          onChange={(e: ChangeEvent<HTMLTextAreaElement>) => onChange(e.target.value)}
          onScroll={onScroll}
          wrap="off"
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          autoCorrect="off"
          aria-labelledby={labelledBy}
          aria-describedby={describedBy}
          aria-invalid={current && diagnostics.some((d) => d.severity === 'error')}
          data-testid="job-file-input"
          rows={20}
        />
      </div>
    </div>
  );
});
