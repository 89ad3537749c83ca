import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import { parseMemory } from '../jobfile/values.js';
import { formatDuration, parseDuration } from '../schedule/duration.js';

/**
 * How one environment variable is read: each reader trims, applies the default when the variable
 * is unset or blank, and throws a ConfigError naming the variable when its value is wrong.
 */

export type Env = Record<string, string | undefined>;

export function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

export function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function bool(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

export function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a valid URL: "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return raw;
}

/** 127.0.0.0/8, ::1 and localhost: an address no one between Kiln and the peer can intercept. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** A size (`512m`, `1g`, `1Gi`, or bytes) of at least `min` bytes. */
export function size(env: Env, name: string, def: number, min = 1): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const bytes = /^\d+$/.test(raw) ? Number(raw) : parseMemory(raw);
  if (typeof bytes === 'string') throw new ConfigError(name, bytes);
  if (bytes < min) throw new ConfigError(name, `must be at least ${min} bytes, got ${bytes}`);
  return bytes;
}

/** A duration (`30d`, `12h`, `1h30m`) of at least `min` milliseconds. */
export function duration(env: Env, name: string, def: number, min: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const parsed = parseDuration(raw);
  if (!parsed.ok) throw new ConfigError(name, parsed.error);
  if (parsed.value < min) throw new ConfigError(name, `must be at least ${formatDuration(min)}, got ${raw}`);
  return parsed.value;
}

export function cpus(env: Env, name: string, def: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || n <= 0 || n > 1024) throw new ConfigError(name, `must be a number of CPUs greater than 0, got "${raw}"`);
  return n;
}

export function list(env: Env, name: string, def: string[], check: (item: string) => string | null): string[] {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const items = raw.split(/[,:\s]+/).filter(Boolean);
  for (const item of items) {
    const problem = check(item);
    if (problem) throw new ConfigError(name, problem);
  }
  return items;
}

/** A list of CIDRs (`10.0.0.0/8, fd00::/8`; a bare address is one host), by commas or spaces. */
export function cidrs(env: Env, name: string): string[] {
  const raw = str(env, name);
  if (raw === undefined) return [];
  const items = raw.split(/[,\s]+/).filter(Boolean);
  for (const item of items) {
    const [address = '', prefix, extra] = item.split('/');
    const family = isIP(address);
    const max = family === 6 ? 128 : 32;
    const ok = family !== 0 && extra === undefined && (prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= max));
    if (!ok) throw new ConfigError(name, `"${item}" is not an address or a CIDR block such as 10.0.0.0/8 or fd00::/8`);
  }
  return items;
}

/** An absolute path without `..`, normalised (no trailing slash). */
export function absolutePath(env: Env, name: string): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  if (!raw.startsWith('/') || raw.split('/').includes('..')) throw new ConfigError(name, `must be an absolute path without "..", got "${raw}"`);
  return raw.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
}

/** A docker network name (`none` refuses every checkout over the network). */
export function dockerNetwork(env: Env, name: string, def: string): string {
  const raw = str(env, name) ?? def;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(raw)) throw new ConfigError(name, `"${raw}" is not a docker network name`);
  if (raw === 'host') throw new ConfigError(name, 'the host network would give the checkout the worker host\'s own network view');
  return raw;
}
