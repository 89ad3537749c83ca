import { KilnApiError, SubmitJobDocument, type SubmitJobMutation } from '@kiln/sdk';
import { useEffect, useRef, useState } from 'react';
import { errorText, kiln } from '../api';
import { CodeArea } from './CodeArea';
import { DiagnosticsList } from './DiagnosticsList';
import { SubmitResult } from './SubmitResult';
import { useValidation, type EditorDiagnostic } from './useValidation';
import './EditorPage.css';

/** The draft survives a reload or a visit to another page of the app in the same tab. */
const DRAFT_KEY = 'kiln.editor.draft';

const EXAMPLE = `jobs:
  - name: Hello
    schedule: "*/30 * * * * *"
    timezone: UTC
    steps:
      - run: echo hello
`;

function loadDraft(): string {
  try {
    return sessionStorage.getItem(DRAFT_KEY) ?? EXAMPLE;
  } catch {
    return EXAMPLE;
  }
}

type Outcome = { kind: 'submitted'; jobs: SubmitJobMutation['submitJob']['jobs'] } | { kind: 'refused'; message: string; diagnostics: EditorDiagnostic[] } | null;

/** The editor (`/submit`, docs/design.md#job-editor): type a job file, see its problems as you type, submit it. */
export function EditorPage() {
  const [text, setText] = useState(loadDraft);
  const [submitting, setSubmitting] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>(null);
  const area = useRef<HTMLTextAreaElement>(null);
  const validation = useValidation(text);

  useEffect(() => {
    document.title = 'Submit a job · Kiln';
  }, []);
  useEffect(() => {
    try {
      sessionStorage.setItem(DRAFT_KEY, text);
    } catch {
      // Storage full or disabled: the text stays in the page all the same.
    }
  }, [text]);

  const current = validation.checkedText === text;
  // A refused submit's diagnostics stand for the text it refused until a check of newer text comes.
  const refusedNow = outcome?.kind === 'refused' && !current ? outcome.diagnostics : null;
  const diagnostics = refusedNow ?? (current ? validation.diagnostics : []);
  const errors = diagnostics.filter((d) => d.severity === 'error').length;

  const pick = (d: EditorDiagnostic) => {
    const el = area.current;
    if (!el) return;
    const lines = text.split('\n');
    let offset = 0;
    for (let i = 0; i < d.line - 1 && i < lines.length; i++) offset += lines[i]!.length + 1;
    offset += Math.min(d.column - 1, lines[d.line - 1]?.length ?? 0);
    el.focus();
    el.setSelectionRange(offset, offset);
  };

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setSubmitting(true);
    try {
      const { submitJob } = await kiln.request(SubmitJobDocument, { spec: text });
      setOutcome({ kind: 'submitted', jobs: submitJob.jobs });
    } catch (err) {
      const refused = err instanceof KilnApiError && err.code === 'BAD_USER_INPUT';
      setOutcome({ kind: 'refused', message: refused ? `Not submitted: ${err.message}` : `Not submitted: ${errorText(err)}`, diagnostics: refused ? err.diagnostics : [] });
    } finally {
      setSubmitting(false);
    }
  };

  return (
    <main id="main" className="page editor-page">
      <h1 id="editor-title">Submit a job</h1>
      <form onSubmit={submit} className="editor-form">
        <p id="editor-help" className="muted">
          A job file in YAML (<code>jobs:</code> with a <code>name</code> and <code>steps</code> each). It is checked as you type; a job whose name you already
          have is updated.
        </p>
        <CodeArea
          ref={area}
          value={text}
          onChange={(v) => {
            setText(v);
            if (outcome?.kind === 'submitted') setOutcome(null);
          }}
          diagnostics={diagnostics}
          current={current || refusedNow !== null}
          labelledBy="editor-title"
          describedBy="editor-help editor-check"
        />
        <div className="editor-bar">
          <button type="submit" className="primary" disabled={submitting || text.trim() === ''}>
            {submitting ? 'Submitting…' : 'Submit'}
          </button>
          <span id="editor-check" role="status" data-testid="check-status" className={errors > 0 ? 'error' : 'muted'}>
            {validation.error
              ? `Could not check the file: ${validation.error}`
              : validation.pending || !current
                ? 'Checking…'
                : errors > 0
                  ? `${errors} ${errors === 1 ? 'problem' : 'problems'}`
                  : diagnostics.length > 0
                    ? `No errors, ${diagnostics.length} ${diagnostics.length === 1 ? 'warning' : 'warnings'}`
                    : 'No problems found'}
          </span>
        </div>
      </form>
      {outcome?.kind === 'refused' && (
        <p className="error" role="alert" data-testid="submit-error">
          {outcome.message} The text is unchanged; fix the problems listed and submit again.
        </p>
      )}
      <DiagnosticsList id="editor-diagnostics" diagnostics={diagnostics} onPick={pick} />
      {outcome?.kind === 'submitted' && <SubmitResult jobs={outcome.jobs} />}
    </main>
  );
}
