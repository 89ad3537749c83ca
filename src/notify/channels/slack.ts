import { NOTIFY_EVENT_WORDS } from '../../jobfile/types.js';
import { postJson } from './httpPost.js';
import type { Channel, ChannelConfig, ChannelDeps, NotifyPayload } from './types.js';

/** Slack's mrkdwn escapes: `&`, `<` and `>` would otherwise start entities and links. */
function mrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The message for a payload: one line about the job, one about the execution or the missed fires. */
export function slackText(p: NotifyPayload): string {
  // The event is read from a stored payload: one this build does not know is named as it is.
  const lines = [`*${mrkdwn(p.job.name)}* ${NOTIFY_EVENT_WORDS[p.event]?.slack ?? p.event}`];
  if (p.execution) {
    const detail = [p.execution.status, p.execution.exit_code === null ? null : `exit ${p.execution.exit_code}`, p.execution.error].filter(Boolean).join(', ');
    lines.push(`<${p.execution.url}|execution> ${mrkdwn(detail)}`);
  }
  if (p.missed) lines.push(`${p.missed.count} fire time${p.missed.count === 1 ? '' : 's'} missed, ${p.missed.first_fire_at} to ${p.missed.last_fire_at}`);
  return lines.join('\n');
}

/**
 * The Slack channel (docs/design.md#notifications): a message to an incoming webhook, given as a
 * URL or as the name of the owner's secret that holds it. Any Slack-compatible receiver works
 * (Mattermost, Rocket.Chat); the target goes through the same guard as a webhook's.
 */
export function createSlackChannel(_config: ChannelConfig, deps: ChannelDeps): Channel {
  return {
    async send(d, signal) {
      const slack = d.rule.slack;
      if (slack === undefined) return { ok: false, permanent: true, responseCode: null, error: `rule ${d.ruleIndex} has no slack channel any more` };
      const url = slack.url ?? (slack.secret === undefined ? undefined : await deps.secret(d.owner, slack.secret));
      if (url === undefined) return { ok: false, permanent: true, responseCode: null, error: `secret ${slack.secret ?? '?'} is not stored (setSecret): no Slack URL` };
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        return { ok: false, permanent: true, responseCode: null, error: `secret ${slack.secret ?? '?'} does not hold a URL` };
      }
      const body = Buffer.from(JSON.stringify({ text: slackText(d.payload) }), 'utf8');
      return postJson(parsed, body, { 'Content-Type': 'application/json', 'User-Agent': 'Kiln' }, deps.guard, signal);
    },
  };
}
