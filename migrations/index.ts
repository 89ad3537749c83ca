import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261127000000_init } from './Migration20261127000000_init.js';
import { Migration20261127010000_scheduling } from './Migration20261127010000_scheduling.js';
import { Migration20261127020000_runner } from './Migration20261127020000_runner.js';
import { Migration20261127030000_events } from './Migration20261127030000_events.js';
import { Migration20261127050000_attempts } from './Migration20261127050000_attempts.js';
import { Migration20261206000000_dispatch } from './Migration20261206000000_dispatch.js';
import { Migration20261206120000_log_chunks_parent } from './Migration20261206120000_log_chunks_parent.js';
import { Migration20261207000000_engineDownAttempts } from './Migration20261207000000_engineDownAttempts.js';
import { Migration20261208000000_quotas } from './Migration20261208000000_quotas.js';
import { Migration20261208010000_imageGrants } from './Migration20261208010000_imageGrants.js';
import { Migration20261208020000_rateLimits } from './Migration20261208020000_rateLimits.js';
import { Migration20261209000000_webSessions } from './Migration20261209000000_webSessions.js';
import { Migration20261209010000_serviceLogs } from './Migration20261209010000_serviceLogs.js';
import { Migration20261209020000_cacheEntries } from './Migration20261209020000_cacheEntries.js';
import { Migration20261210000000_hookDeliveries } from './Migration20261210000000_hookDeliveries.js';
import { Migration20261211000000_notifications } from './Migration20261211000000_notifications.js';
import { Migration20261211010000_webhookTrigger } from './Migration20261211010000_webhookTrigger.js';
import { Migration20261211020000_logPacks } from './Migration20261211020000_logPacks.js';
import { Migration20261212000000_eventTriggerCache } from './Migration20261212000000_eventTriggerCache.js';
import { Migration20261213000000_attemptsByStatement } from './Migration20261213000000_attemptsByStatement.js';

/** Every migration, oldest first. Listed explicitly so `dist/` needs no folder scanning. */
export const MIGRATIONS: MigrationObject[] = [
  { name: 'Migration20261127000000_init', class: Migration20261127000000_init },
  { name: 'Migration20261127010000_scheduling', class: Migration20261127010000_scheduling },
  { name: 'Migration20261127020000_runner', class: Migration20261127020000_runner },
  { name: 'Migration20261127030000_events', class: Migration20261127030000_events },
  { name: 'Migration20261127050000_attempts', class: Migration20261127050000_attempts },
  { name: 'Migration20261206000000_dispatch', class: Migration20261206000000_dispatch },
  { name: 'Migration20261206120000_log_chunks_parent', class: Migration20261206120000_log_chunks_parent },
  { name: 'Migration20261207000000_engineDownAttempts', class: Migration20261207000000_engineDownAttempts },
  { name: 'Migration20261208000000_quotas', class: Migration20261208000000_quotas },
  { name: 'Migration20261208010000_imageGrants', class: Migration20261208010000_imageGrants },
  { name: 'Migration20261208020000_rateLimits', class: Migration20261208020000_rateLimits },
  { name: 'Migration20261209000000_webSessions', class: Migration20261209000000_webSessions },
  { name: 'Migration20261209010000_serviceLogs', class: Migration20261209010000_serviceLogs },
  { name: 'Migration20261209020000_cacheEntries', class: Migration20261209020000_cacheEntries },
  { name: 'Migration20261210000000_hookDeliveries', class: Migration20261210000000_hookDeliveries },
  { name: 'Migration20261211000000_notifications', class: Migration20261211000000_notifications },
  { name: 'Migration20261211010000_webhookTrigger', class: Migration20261211010000_webhookTrigger },
  { name: 'Migration20261211020000_logPacks', class: Migration20261211020000_logPacks },
  { name: 'Migration20261212000000_eventTriggerCache', class: Migration20261212000000_eventTriggerCache },
  { name: 'Migration20261213000000_attemptsByStatement', class: Migration20261213000000_attemptsByStatement },
];
