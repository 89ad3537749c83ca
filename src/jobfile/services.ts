import { isScalar } from 'yaml';
import { childPath } from './diagnostics.js';
import { Reader, describe, given, type Field } from './reader.js';
import type { ReadyCheck, ServiceSpec } from './serviceSpec.js';

export type { ReadyCheck, ServiceSpec };

/** Most services one job may have. */
export const MAX_SERVICES_PER_JOB = 10;
/** Most arguments of a service's `command`. */
export const MAX_SERVICE_COMMAND_ARGS = 100;
/** A readiness check's timeout when the file gives none. */
export const DEFAULT_READY_TIMEOUT_MS = 60_000;
/** Longest readiness timeout accepted. */
export const MAX_READY_TIMEOUT_MS = 30 * 60_000;

/**
 * A service's name is its host name on the execution's network, so it must be a DNS label:
 * lower-case letters, digits and `-`, starting with a letter, not ending with `-`, 1 to 63 long.
 */
export const SERVICE_NAME_PATTERN = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Names a service may not take: the host names a container already has for itself. */
const RESERVED_NAMES = new Set(['localhost']);

const SERVICE_KEYS = ['name', 'image', 'env', 'command', 'ready'] as const;
const READY_KEYS = ['tcp', 'run', 'timeout'] as const;

/**
 * `services:` of one job: a list of mappings, each checked like the rest of the file (every
 * problem found, with its line and column). `lintEnv` is the job file's own env reader; `network`
 * the job's. Returns the services, or undefined when any has an error.
 */
export function lintServices(
  r: Reader,
  field: Field,
  lintEnv: (r: Reader, field: Field) => Record<string, string> | undefined,
  network: string | undefined,
): ServiceSpec[] | undefined {
  const list = r.list(field, 'a list of services, each with a "name" and an "image"');
  if (list === undefined) return undefined;
  // The steps of a job with services sit on the execution's own network, which reaches nothing else.
  if (network === 'bridge' && list.items.length > 0) {
    return void r.error(field.keyAt, field.path, 'services cannot be combined with network: bridge: the steps of a job with services reach only its services');
  }
  if (list.items.length > MAX_SERVICES_PER_JOB) {
    return void r.error(field.at, field.path, `a job may have at most ${MAX_SERVICES_PER_JOB} services, found ${list.items.length}`);
  }
  const errorsBefore = r.errorCount;
  const names = new Map<string, string>();
  const services = r.items(list, field).map((item) => lintService(r, item, names, lintEnv));
  return r.errorCount === errorsBefore ? (services as ServiceSpec[]) : undefined;
}

function lintService(
  r: Reader,
  field: Field,
  names: Map<string, string>,
  lintEnv: (r: Reader, field: Field) => Record<string, string> | undefined,
): ServiceSpec | undefined {
  const map = r.map(field, 'a mapping with a "name" and an "image"');
  if (map === undefined) return undefined;
  const fields = r.entries(map, field.path, SERVICE_KEYS);
  const nameField = given(fields, 'name');
  const imageField = given(fields, 'image');
  if (nameField === undefined) r.error(fields.get('name')?.keyAt ?? map.range![0], childPath(field.path, 'name'), 'missing required key "name": the host name of the service');
  if (imageField === undefined) r.error(fields.get('image')?.keyAt ?? map.range![0], childPath(field.path, 'image'), 'missing required key "image"');
  const name = nameField === undefined ? undefined : lintServiceName(r, nameField, names);
  const image = imageField === undefined ? undefined : r.text(imageField);
  if (image !== undefined && /\s/.test(image)) r.error(imageField!.at, imageField!.path, 'image must not contain spaces');
  const envField = given(fields, 'env');
  const env = envField === undefined ? {} : lintEnv(r, envField);
  const commandField = given(fields, 'command');
  const command = commandField === undefined ? null : lintCommand(r, commandField);
  const readyField = given(fields, 'ready');
  const ready = readyField === undefined ? null : lintReady(r, readyField);
  if (name === undefined || image === undefined || env === undefined || command === undefined || ready === undefined) return undefined;
  return { name, image, env, command, ready };
}

function lintServiceName(r: Reader, field: Field, names: Map<string, string>): string | undefined {
  const name = r.string(field);
  if (name === undefined) return undefined;
  if (!SERVICE_NAME_PATTERN.test(name)) {
    return void r.error(
      field.at,
      field.path,
      `service name ${describe(field.node)} must be a host name: 1 to 63 lower-case letters, digits and "-", starting with a letter and not ending with "-"`,
    );
  }
  if (RESERVED_NAMES.has(name)) return void r.error(field.at, field.path, `"${name}" is not available as a service name`);
  const other = names.get(name);
  if (other !== undefined) return void r.error(field.at, field.path, `duplicate service name "${name}": ${other} has it already`);
  names.set(name, field.path.replace(/\.name$/, ''));
  return name;
}

/** `command`: a list of arguments (exec form, no shell), or one string split on spaces. */
function lintCommand(r: Reader, field: Field): string[] | undefined {
  if (isScalar(field.node) && typeof field.node.value === 'string') {
    const args = field.node.value.trim().split(/\s+/).filter(Boolean);
    if (args.length === 0) return r.wrong(field, 'a non-empty list of arguments');
    return args;
  }
  const list = r.list(field, 'a list of arguments, such as [postgres, -c, fsync=off]');
  if (list === undefined) return undefined;
  if (list.items.length === 0) return r.wrong(field, 'a non-empty list of arguments');
  if (list.items.length > MAX_SERVICE_COMMAND_ARGS) {
    return void r.error(field.at, field.path, `command may have at most ${MAX_SERVICE_COMMAND_ARGS} arguments, found ${list.items.length}`);
  }
  const args: string[] = [];
  let ok = true;
  for (const item of r.items(list, field)) {
    const arg = r.scalarText(item);
    if (arg === undefined) ok = false;
    else args.push(arg);
  }
  return ok ? args : undefined;
}

/** `ready`: `{ tcp: port, timeout }` or `{ run: "command", timeout }`, exactly one of tcp and run. */
function lintReady(r: Reader, field: Field): ReadyCheck | undefined {
  const map = r.map(field, 'a mapping such as { tcp: 5432, timeout: 60s } or { run: "pg_isready", timeout: 60s }');
  if (map === undefined) return undefined;
  const fields = r.entries(map, field.path, READY_KEYS);
  const tcp = given(fields, 'tcp');
  const run = given(fields, 'run');
  const timeoutField = given(fields, 'timeout');
  const timeoutMs = timeoutField === undefined ? DEFAULT_READY_TIMEOUT_MS : r.duration(timeoutField, MAX_READY_TIMEOUT_MS, '30m');
  if (tcp !== undefined && run !== undefined) {
    return void r.error(run.keyAt, run.path, 'ready takes either "tcp" or "run", not both');
  }
  if (tcp === undefined && run === undefined) {
    return void r.error(field.at, field.path, 'ready needs "tcp: <port>" or "run: <command>"');
  }
  if (tcp !== undefined) {
    const port = r.integer(tcp, 1, 65535);
    return port === undefined || timeoutMs === undefined ? undefined : { tcp: port, timeoutMs };
  }
  const command = r.text(run!, false);
  return command === undefined || timeoutMs === undefined ? undefined : { run: command, timeoutMs };
}
