import type pg from 'pg';
import type { NotifySettings } from '../../config/notify.js';
import type { NotifyChannelName, NotifyEvent, NotifyRule } from '../../jobfile/types.js';
import type { ArtifactStore } from '../../storage/ArtifactStore.js';
import type { Log } from '../../util/log.js';
import type { TargetGuard } from '../targetGuard.js';

/**
 * What a delivery carries (docs/design.md#notifications): the webhook body as it is sent, and what
 * Slack messages and mails are rendered from. Timestamps are ISO-8601 UTC strings.
 */
export interface NotifyPayload {
  delivery_id: string;
  /** The most specific event the rule matched. */
  event: NotifyEvent;
  /** Every event of the rule this occurrence matched. */
  events: NotifyEvent[];
  job: { id: string; name: string };
  /** Absent for `missed`. */
  execution?: {
    id: string;
    status: string;
    exit_code: number | null;
    /** As stored: masked by the worker where it wrote it (docs/design.md#masking), sent as is by every channel. */
    error: string | null;
    started_at: string | null;
    finished_at: string | null;
    /** `<public>/executions/<id>`: KILN_PUBLIC_URL, or http://HOST:PORT. */
    url: string;
  };
  /** `missed` only: the fire times grouped into this delivery. */
  missed?: { count: number; first_fire_at: string; last_fire_at: string };
  occurred_at: string;
}

/** One delivery, claimed by a sender for one attempt. */
export interface DeliveryToSend {
  /** The delivery id: X-Kiln-Delivery, the mail's Message-ID. The same on every attempt. */
  id: string;
  owner: string;
  jobId: string;
  executionId: string | null;
  event: NotifyEvent;
  channel: NotifyChannelName;
  ruleIndex: number;
  payload: NotifyPayload;
  /** 1-based: this attempt's number. */
  attempt: number;
  /** The rule as the job has it now (its channel's settings). */
  rule: NotifyRule;
}

/**
 * How one attempt went. `permanent`: trying again cannot help (a 4xx other than 408/429, a refused
 * target, a missing secret); otherwise a failure is retried with backoff.
 */
export interface SendResult {
  ok: boolean;
  permanent: boolean;
  responseCode: number | null;
  /** Why it failed, for people (the sender masks and caps it); null when ok. */
  error: string | null;
}

/** A way to deliver; one per channel name, shared by every delivery of a process. */
export interface Channel {
  /** Never throws for a delivery's own problems: those are a SendResult. `signal` aborts at shutdown or timeout. */
  send(d: DeliveryToSend, signal: AbortSignal): Promise<SendResult>;
}

/** What every channel is configured with. */
export interface ChannelConfig {
  notify: NotifySettings;
  /** Where people reach Kiln: KILN_PUBLIC_URL, or http://HOST:PORT (links in messages). */
  publicUrl: string;
}

/** What channels use at send time. */
export interface ChannelDeps {
  pool: pg.Pool;
  /** The plain value of `owner`'s stored secret `name`; undefined when it is not stored. */
  secret(owner: string, name: string): Promise<string | undefined>;
  /** Checks and pins where an HTTP target resolves (webhook, Slack). */
  guard: TargetGuard;
  log: Log;
  /** Where archived logs are: a mail quotes the last lines of a log whose chunks were pruned. */
  store: ArtifactStore;
}
