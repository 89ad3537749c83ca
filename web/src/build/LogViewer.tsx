import { useVirtualizer } from '@tanstack/react-virtual';
import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { AnsiLine } from './ansi';
import { duration } from './format';
import { displayRows, rowOfLine, type LogLines } from './logLines';

/** The steps as the page knows them, for the section headers. */
export interface StepInfo {
  index: number;
  name: string;
  status: string;
  startedAt?: string | null;
  finishedAt?: string | null;
}

/** A request to show a line: scroll to it (opening its section) and highlight it. */
export interface Focus {
  seq: number;
  /** Distinguishes two requests for the same line. */
  nonce: number;
}

interface Props {
  lines: LogLines;
  version: number;
  steps: readonly StepInfo[];
  /** The execution has finished: sections fold by outcome rather than by what runs now. */
  finished: boolean;
  focus: Focus | null;
  /** The line highlighted (permalink or search hit). */
  highlighted: number | null;
  /** Lower-case text marked in the lines that hold it. */
  needle: string | null;
  onLineLink(seq: number): void;
}

const ROW = 20;

const lineCount = (n: number) => `${n.toLocaleString('en-US')} line${n === 1 ? '' : 's'}`;
/** Within this many pixels of the end counts as "at the bottom" for follow mode. */
const BOTTOM_SLACK = 4 * ROW;

function sectionTitle(step: StepInfo | undefined, stepIndex: number | null): string {
  if (stepIndex === null) return 'Kiln';
  return step === undefined ? `Step ${stepIndex + 1}` : `Step ${stepIndex + 1}: ${step.name}`;
}

/**
 * Whether a section starts open: the failed step and the running one open; while the run is
 * over the others fold; Kiln's own lines and steps of a run still going stay open. A section
 * the user toggles keeps their choice.
 */
function openByDefault(step: StepInfo | undefined, stepIndex: number | null, finished: boolean, anyFailed: boolean): boolean {
  if (stepIndex === null) return !finished || !anyFailed;
  if (step === undefined) return !finished;
  if (step.status === 'FAILED' || step.status === 'RUNNING') return true;
  return !finished;
}

const LineRow = memo(function LineRow({ seq, text, stream, needle, highlighted, onLink }: { seq: number; text: string; stream: string; needle: string | null; highlighted: boolean; onLink(seq: number): void }) {
  return (
    <div className={`log-line log-${stream.toLowerCase()}${highlighted ? ' log-highlight' : ''}`} data-seq={seq} id={`L${seq}`}>
      <a
        className="log-ln"
        href={`#L${seq}`}
        onClick={(e) => {
          e.preventDefault();
          onLink(seq);
        }}
      >
        {seq}
      </a>
      <span className="log-text">
        <AnsiLine text={text} needle={needle} />
      </span>
    </div>
  );
});

/**
 * The log, one collapsible section per step, virtualised: only the rows in view (and a few
 * around) are in the DOM, so a log of any length renders as fast as a screenful. Follows the end
 * while the run is live and the reader is at the bottom; scrolling up stops following, scrolling
 * back to the bottom resumes it.
 */
export function LogViewer({ lines, version, steps, finished, focus, highlighted, needle, onLineLink }: Props) {
  const scroller = useRef<HTMLElement>(null);
  const [toggled, setToggled] = useState<ReadonlyMap<number, boolean>>(new Map());
  const [following, setFollowing] = useState(!finished);
  const anyFailed = steps.some((s) => s.status === 'FAILED');

  const isOpen = useCallback(
    (k: number) => {
      const own = toggled.get(k);
      if (own !== undefined) return own;
      const stepIndex = lines.sections[k]!.step;
      return openByDefault(stepIndex === null ? undefined : steps[stepIndex], stepIndex, finished, anyFailed);
    },
    [toggled, lines, steps, finished, anyFailed],
  );
  // biome-ignore lint/correctness/useExhaustiveDependencies: `version` is how a mutation of `lines` shows
  const rows = useMemo(() => displayRows(lines, isOpen), [lines, version, isOpen]);

  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 30,
  });

  const toggle = (k: number) => setToggled((m) => new Map(m).set(k, !isOpen(k)));

  // A focus request opens the line's section, then scrolls to its row once the rows include it.
  const [pending, setPending] = useState<Focus | null>(null);
  const focusArrived = focus !== null && focus.seq >= 1 && focus.seq <= lines.count;
  // biome-ignore lint/correctness/useExhaustiveDependencies: only a new focus request, or its line arriving, acts
  useEffect(() => {
    if (focus === null || !focusArrived) return;
    const k = lines.sectionOf(focus.seq - 1);
    if (!isOpen(k)) setToggled((m) => new Map(m).set(k, true));
    setFollowing(false);
    setPending(focus);
  }, [focus, focusArrived]);
  useLayoutEffect(() => {
    if (pending === null) return;
    const row = rowOfLine(rows, pending.seq - 1);
    if (row < 0) return;
    virtualizer.scrollToIndex(row, { align: 'center' });
    setPending(null);
  }, [pending, rows, virtualizer]);

  // Follow mode: keep the end in view as lines arrive.
  useLayoutEffect(() => {
    if (following && rows.length > 0) virtualizer.scrollToIndex(rows.length - 1, { align: 'end' });
  }, [following, rows, virtualizer]);
  // The end of the run folds sections above the reader: the line they were looking at stays in view.
  // biome-ignore lint/correctness/useExhaustiveDependencies: only the run's end acts
  useEffect(() => {
    if (!finished) return;
    setFollowing(false);
    if (highlighted !== null) setPending({ seq: highlighted, nonce: -1 });
  }, [finished]);

  const onScroll = () => {
    const el = scroller.current;
    if (el === null || finished) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK;
    if (atBottom !== following) setFollowing(atBottom);
  };

  const items = virtualizer.getVirtualItems();
  return (
    <div className="log">
      <div className="log-toolbar">
        {!finished && (
          <label className="log-follow">
            <input type="checkbox" checked={following} onChange={(e) => setFollowing(e.target.checked)} /> Follow the end
          </label>
        )}
        <button
          type="button"
          onClick={() => {
            setFollowing(false);
            if (rows.length > 0) virtualizer.scrollToIndex(0, { align: 'start' });
          }}
        >
          Top
        </button>
        <button type="button" onClick={() => rows.length > 0 && virtualizer.scrollToIndex(rows.length - 1, { align: 'end' })}>
          Last line
        </button>
        <span className="log-count">{lineCount(lines.count)}</span>
      </div>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard to scroll it (WCAG 2.1.1) */}
      <section ref={scroller} className="log-scroll" onScroll={onScroll} tabIndex={0} aria-label="Build log">
        <div className="log-body" style={{ height: virtualizer.getTotalSize() }}>
          {items.map((item) => {
            const row = rows[item.index]!;
            let content: React.ReactNode;
            if (row < 0) {
              const k = -row - 1;
              const section = lines.sections[k]!;
              const step = section.step === null ? undefined : steps[section.step];
              const open = isOpen(k);
              content = (
                <button type="button" className="log-section" aria-expanded={open} onClick={() => toggle(k)} data-section={section.step ?? 'kiln'}>
                  <span aria-hidden="true">{open ? '▾' : '▸'}</span> {sectionTitle(step, section.step)}
                  {step !== undefined && (
                    <span className={`log-section-status step-${step.status.toLowerCase()}`}>
                      {step.status.toLowerCase()}
                      {step.startedAt ? ` · ${duration(step.startedAt, step.finishedAt ?? null)}` : ''}
                    </span>
                  )}
                  <span className="log-section-count">{lineCount(section.end - section.start)}</span>
                </button>
              );
            } else {
              const seq = row + 1;
              content = <LineRow seq={seq} text={lines.texts[row]!} stream={lines.streamOf(row)} needle={needle} highlighted={highlighted === seq} onLink={onLineLink} />;
            }
            return (
              <div key={item.key} className="log-row" style={{ transform: `translateY(${item.start}px)` }}>
                {content}
              </div>
            );
          })}
        </div>
      </section>
    </div>
  );
}
