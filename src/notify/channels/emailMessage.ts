import { NOTIFY_EVENT_WORDS } from '../../jobfile/types.js';
import type { NotifyPayload } from './types.js';

/** How many of the execution's last log lines a mail quotes. */
export const MAIL_LOG_LINES = 20;

/** Subject and text of one notification mail (docs/design.md#notification-email). */
export interface MailText {
  subject: string;
  text: string;
}

/**
 * The mail for a delivery, from its payload (what a webhook receives), the execution's last log
 * lines and its error text, both as stored: the worker masked them when it wrote them
 * (docs/design.md#masking), so nothing here masks again. Pure, so each event's shape is tested as data.
 */
export function renderMail(payload: NotifyPayload, logLines: readonly string[], error: string | null): MailText {
  const event = payload.event;
  const missed = payload.missed;
  const what = event === 'missed' && missed ? `missed ${missed.count} fire time${missed.count === 1 ? '' : 's'}` : NOTIFY_EVENT_WORDS[event].mail;
  const subject = `[Kiln] ${payload.job.name}: ${what}`;
  const rows: Array<[string, string]> = [
    ['Job', `${payload.job.name} (${payload.job.id})`],
    ['Event', payload.events.length > 1 ? `${event} (${payload.events.join(', ')})` : event],
  ];
  if (missed) {
    rows.push(['Missed', `${missed.count} fire time${missed.count === 1 ? '' : 's'}`]);
    rows.push(['First missed', missed.first_fire_at]);
    rows.push(['Last missed', missed.last_fire_at]);
  }
  const e = payload.execution;
  if (e) {
    rows.push(['Status', e.exit_code === null ? e.status : `${e.status}, exit code ${e.exit_code}`]);
    if (error !== null) rows.push(['Error', error.replace(/\s*\n\s*/g, ' ')]);
    if (e.started_at !== null) rows.push(['Started', e.started_at]);
    if (e.finished_at !== null) rows.push(['Finished', e.finished_at]);
    rows.push(['Execution', e.url]);
  }
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const lines = rows.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`);
  if (e) {
    lines.push('');
    if (logLines.length === 0) lines.push('The execution has no log lines.');
    else lines.push(`Last ${logLines.length} log line${logLines.length === 1 ? '' : 's'}:`, '', ...logLines.map((l) => `  ${l}`));
  }
  lines.push('', `Sent by Kiln at ${payload.occurred_at}, delivery ${payload.delivery_id}.`);
  return { subject, text: `${lines.join('\n')}\n` };
}
