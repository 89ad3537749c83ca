import { literalTargetProblem, type TargetPolicy } from '../util/targetPolicy.js';
import { Reader, given, type Field } from './reader.js';
import type { NotifyEvent, NotifyRule } from './types.js';
import { EMAIL_PATTERN, ENV_NAME_PATTERN } from './values.js';

/** Every event a rule may name, in the order payloads list them. */
export const NOTIFY_EVENTS: readonly NotifyEvent[] = ['failed', 'first_failure', 'fixed', 'timed_out', 'missed', 'running_longer'];
/** Most rules one job may have, and most addresses one email channel may list. */
export const MAX_NOTIFY_RULES = 10;
export const MAX_EMAIL_ADDRESSES = 10;
/** Longest `longer_than`. */
const MAX_LONGER_THAN_MS = 7 * 24 * 3_600_000;
const MAX_URL_LENGTH = 2048;

const RULE_KEYS = ['on', 'longer_than', 'webhook', 'slack', 'email'] as const;

/**
 * Null when `raw` is a URL a notification may be sent to, otherwise why not: http or https only,
 * no credentials in it (they would be shown and logged; a secret carries them), and, with
 * `policy`, no literal private or loopback address (nor `localhost`) that KILN_WEBHOOK_ALLOW does
 * not allow. A name is judged when it is resolved, at send time.
 */
export function notifyUrlProblem(raw: string, policy: TargetPolicy | undefined): string | null {
  if (raw.length > MAX_URL_LENGTH) return `a URL may have at most ${MAX_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `"${raw}" is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `only http and https URLs are allowed, got ${url.protocol.slice(0, -1)}`;
  if (url.username !== '' || url.password !== '') return 'a URL must not carry credentials: store them in a secret (webhook: sign with `secret`; slack: `secret` holding the URL)';
  const problem = policy === undefined ? null : literalTargetProblem(url.hostname, policy);
  return problem === null ? null : `refused target: ${problem}`;
}

/** Reads the owner's secret name at `field`, or records why it is not one. */
function secretName(r: Reader, field: Field): string | undefined {
  const name = r.string(field);
  if (name === undefined) return undefined;
  if (!ENV_NAME_PATTERN.test(name)) return void r.error(field.at, field.path, `"${name}" is not a valid secret name (letters, digits and _, not starting with a digit)`);
  return name;
}

function lintUrl(r: Reader, field: Field, policy: TargetPolicy | undefined): string | undefined {
  const url = r.text(field);
  if (url === undefined) return undefined;
  const problem = notifyUrlProblem(url, policy);
  if (problem !== null) return void r.error(field.at, field.path, `url: ${problem}`);
  return url;
}

function lintWebhook(r: Reader, field: Field, policy: TargetPolicy | undefined): NotifyRule['webhook'] {
  const map = r.map(field, 'a mapping with "url" and optionally "secret"');
  if (map === undefined) return undefined;
  const fields = r.entries(map, field.path, ['url', 'secret']);
  const urlField = given(fields, 'url');
  if (urlField === undefined) return void r.error(fields.get('url')?.keyAt ?? map.range![0], `${field.path}.url`, 'missing required key "url": where to POST');
  const url = lintUrl(r, urlField, policy);
  const secretField = given(fields, 'secret');
  const secret = secretField === undefined ? undefined : secretName(r, secretField);
  if (url === undefined || (secretField !== undefined && secret === undefined)) return undefined;
  return secret === undefined ? { url } : { url, secret };
}

function lintSlack(r: Reader, field: Field, policy: TargetPolicy | undefined): NotifyRule['slack'] {
  const map = r.map(field, 'a mapping with "url", or "secret" naming the secret that holds the URL');
  if (map === undefined) return undefined;
  const fields = r.entries(map, field.path, ['url', 'secret']);
  const urlField = given(fields, 'url');
  const secretField = given(fields, 'secret');
  if ((urlField === undefined) === (secretField === undefined)) {
    return void r.error(map.range![0], field.path, 'slack needs exactly one of "url" (the incoming webhook) and "secret" (the name of the secret holding it)');
  }
  if (urlField !== undefined) {
    const url = lintUrl(r, urlField, policy);
    return url === undefined ? undefined : { url };
  }
  const secret = secretName(r, secretField!);
  return secret === undefined ? undefined : { secret };
}

function lintEmail(r: Reader, field: Field): string[] | undefined {
  const list = r.list(field, 'a list of email addresses');
  if (list === undefined) return undefined;
  if (list.items.length === 0 || list.items.length > MAX_EMAIL_ADDRESSES) {
    return void r.error(field.at, field.path, `email must list 1 to ${MAX_EMAIL_ADDRESSES} addresses, found ${list.items.length}`);
  }
  const addresses: string[] = [];
  for (const item of r.items(list, field)) {
    const address = r.text(item);
    if (address === undefined) continue;
    if (!EMAIL_PATTERN.test(address)) r.error(item.at, item.path, `"${address}" is not an email address such as oncall@example.com`);
    else if (addresses.includes(address)) r.error(item.at, item.path, `"${address}" is listed twice`);
    else addresses.push(address);
  }
  return addresses.length === list.items.length ? addresses : undefined;
}

function lintEvents(r: Reader, field: Field): NotifyEvent[] | undefined {
  const list = r.list(field, `a list of events (${NOTIFY_EVENTS.join(', ')})`);
  if (list === undefined) return undefined;
  if (list.items.length === 0) return void r.error(field.at, field.path, 'on must list at least one event');
  const events: NotifyEvent[] = [];
  for (const item of r.items(list, field)) {
    const event = r.oneOf(item, NOTIFY_EVENTS);
    if (event === undefined) continue;
    if (events.includes(event)) r.error(item.at, item.path, `event "${event}" is listed twice`);
    else events.push(event);
  }
  return events.length === list.items.length ? events : undefined;
}

/** What a server tells the lint of `notify:`; undefined where no server is asked (the CLI). */
export interface NotifyPolicy {
  /** KILN_WEBHOOK_ALLOW. */
  targets: TargetPolicy;
  /** Whether KILN_SMTP_URL is set: without it email rules are accepted with a warning. */
  smtp: boolean;
}

function lintRule(r: Reader, field: Field, server: NotifyPolicy | undefined): NotifyRule | undefined {
  const policy = server?.targets;
  const map = r.map(field, 'a mapping with "on" and at least one channel (webhook, slack, email)');
  if (map === undefined) return undefined;
  const before = r.errorCount;
  const fields = r.entries(map, field.path, RULE_KEYS);
  const rule: NotifyRule = { on: [] };
  const onField = given(fields, 'on');
  if (onField === undefined) r.error(fields.get('on')?.keyAt ?? map.range![0], `${field.path}.on`, `missing required key "on": the events to notify (${NOTIFY_EVENTS.join(', ')})`);
  else rule.on = lintEvents(r, onField) ?? [];
  const longer = given(fields, 'longer_than');
  if (longer !== undefined) {
    const ms = r.duration(longer, MAX_LONGER_THAN_MS, '7d');
    if (ms !== undefined && ms <= 0) r.error(longer.at, longer.path, 'longer_than must be longer than 0s');
    else if (ms !== undefined) rule.longerThanMs = ms;
    if (onField !== undefined && !rule.on.includes('running_longer') && r.errorCount === before) {
      r.error(longer.keyAt, longer.path, 'longer_than is only for rules with running_longer in "on"');
    }
  } else if (rule.on.includes('running_longer')) {
    r.error(onField!.at, `${field.path}.longer_than`, 'running_longer needs "longer_than": how long a run may take before it is notified (e.g. 30m)');
  }
  const webhook = given(fields, 'webhook');
  if (webhook !== undefined) rule.webhook = lintWebhook(r, webhook, policy);
  const slack = given(fields, 'slack');
  if (slack !== undefined) rule.slack = lintSlack(r, slack, policy);
  const email = given(fields, 'email');
  if (email !== undefined) rule.email = lintEmail(r, email);
  if (email !== undefined && rule.email !== undefined && server !== undefined && !server.smtp) {
    r.warn(email.keyAt, email.path, 'KILN_SMTP_URL is not set on this server: mail to these addresses fails until the operator sets it');
  }
  // After an unknown key (a misspelt channel, most likely) that diagnostic says enough.
  if (webhook === undefined && slack === undefined && email === undefined && r.errorCount === before) {
    r.error(map.range![0], field.path, 'a rule needs at least one channel: webhook, slack or email');
  }
  return r.errorCount === before ? rule : undefined;
}

/**
 * `notify:` (docs/design.md#notifications): a list of at most MAX_NOTIFY_RULES rules, each with
 * its events and one or more channels. With `policy` (a server's KILN_WEBHOOK_ALLOW and SMTP
 * setting), literal targets it refuses are diagnostics at the URL, and email rules without SMTP
 * are warned about.
 */
export function lintNotify(r: Reader, field: Field, policy: NotifyPolicy | undefined): NotifyRule[] | undefined {
  const list = r.list(field, 'a list of rules, each with "on" and a channel');
  if (list === undefined) return undefined;
  if (list.items.length > MAX_NOTIFY_RULES) return void r.error(field.at, field.path, `a job may have at most ${MAX_NOTIFY_RULES} notify rules, found ${list.items.length}`);
  const rules = r.items(list, field).map((item) => lintRule(r, item, policy));
  return rules.every((rule) => rule !== undefined) ? rules : undefined;
}
