import './StatusBadge.css';

/**
 * Every status the app shows: an execution's (ExecutionStatus), a tick's (TickOutcome), or a
 * job's state now. Each has a colour, an icon and a word, so colour is never the only signal.
 */
export type Status =
  | 'SUCCEEDED'
  | 'FAILED'
  | 'RUNNING'
  | 'QUEUED'
  | 'CANCELLED'
  | 'TIMED_OUT'
  | 'FIRED'
  | 'MISSED'
  | 'SKIPPED_OVERLAP'
  | 'PAUSED'
  | 'IDLE';

const LOOK: Record<Status, { icon: string; label: string }> = {
  SUCCEEDED: { icon: '✓', label: 'succeeded' },
  FAILED: { icon: '✕', label: 'failed' },
  RUNNING: { icon: '▶', label: 'running' },
  QUEUED: { icon: '…', label: 'queued' },
  CANCELLED: { icon: '⊘', label: 'cancelled' },
  TIMED_OUT: { icon: '⏱', label: 'timed out' },
  FIRED: { icon: '↗', label: 'fired' },
  MISSED: { icon: '!', label: 'missed' },
  SKIPPED_OVERLAP: { icon: '⤼', label: 'skipped (overlap)' },
  PAUSED: { icon: '❚❚', label: 'paused' },
  IDLE: { icon: '○', label: 'idle' },
};

/** The CSS class of a status (`status-timed-out`), for elements that carry its colour. */
export function statusClass(status: Status): string {
  return `status-${status.toLowerCase().replace(/_/g, '-')}`;
}

export function statusLabel(status: Status): string {
  return LOOK[status].label;
}

export function statusIcon(status: Status): string {
  return LOOK[status].icon;
}

export function StatusBadge({ status, children }: { status: Status; children?: React.ReactNode }) {
  const look = LOOK[status];
  return (
    <span className={`status-badge ${statusClass(status)}`} data-status={status}>
      <span aria-hidden="true">{look.icon}</span>
      {look.label}
      {children}
    </span>
  );
}
