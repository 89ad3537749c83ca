import './JobFileView.css';

/** The job's YAML as submitted: read-only, monospaced, with line numbers beside it. */
export function JobFileView({ text }: { text: string }) {
  const lines = text.replace(/\n$/, '').split('\n');
  return (
    <section aria-labelledby="job-file-title" className="job-file">
      <h2 id="job-file-title">Job file</h2>
      {/* A table keeps numbers and lines aligned when long lines scroll sideways. */}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a region that scrolls must be reachable by keyboard (axe scrollable-region-focusable) */}
      <section className="job-file-scroll" aria-label="Job file text" tabIndex={0}>
        <table className="job-file-lines" data-testid="job-file">
          <tbody>
            {lines.map((line, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: a line's number is its identity
              <tr key={i}>
                <td className="job-file-number" aria-hidden="true">
                  {i + 1}
                </td>
                <td className="job-file-text">{line === '' ? '\u00a0' : line}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </section>
  );
}
