import { parseArgs } from 'node:util';
import { KilnApiError, KilnSocketClosedError, type KilnClient } from '@kiln/sdk';
import { clientFrom, DEFAULT_SERVER, UsageError, type TokenSource } from './clientConfig.js';
import * as commands from './commands.js';
import { deliveries } from './deliveryCommands.js';
import * as jobCommands from './jobCommands.js';
import { login, logout, whoami } from './login.js';
import { LoginError } from './oidc.js';
import { Output, type TextStream } from './output.js';
import { preview } from './preview.js';
import { secret } from './secretCommands.js';
import { SecretInputError, type SecretSource } from './secretInput.js';

/** The client commands `kiln` dispatches here (the server roles stay in main.ts). */
export const CLI_COMMANDS = [
  'submit',
  'validate',
  'jobs',
  'history',
  'logs',
  'status',
  'trigger',
  'cancel',
  'pause',
  'resume',
  'delete',
  'ticks',
  'deliveries',
  'preview',
  'secret',
  'login',
  'logout',
  'whoami',
] as const;
export type CliCommand = (typeof CLI_COMMANDS)[number];

export const CLI_USAGE = `client commands (server from --server or KILN_URL, default ${DEFAULT_SERVER}; token from --token or KILN_TOKEN,
else the one stored by \`kiln login\`, which also brings the server named at login; the stored token is sent to that
server only, over https or to a loopback host, unless --trust-server is given):
  kiln submit <jobs.yaml> [--follow]    store the jobs; --follow prints each one-off run's log, exits 0 only if all succeed
  kiln validate <jobs.yaml>             check a job file offline: file:line:col: message, exit 1 on errors
  kiln jobs                             your jobs, their schedule, next run and last outcome
  kiln history <job> [--limit 20]       a job's executions, newest first (<job> = id or name)
  kiln logs <execution> [--follow] [--after <seq>]   an execution's log; --follow until it ends
  kiln status <execution>               an execution and its steps
  kiln trigger <job> [--follow]         run a job now
  kiln cancel <execution>               cancel a queued or running execution
  kiln pause <job>                      stop firing its schedule (fire times are ledgered as PAUSED)
  kiln resume <job>                     fire again from the next fire time
  kiln delete <job>                     delete a job with its history and ledger (active runs are cancelled)
  kiln ticks <job> [--limit 20] [--after <cursor>]   the tick ledger, newest first: each fire time and what became of it
  kiln deliveries <job> [--limit 20]    its notifications, newest first: event, channel, target, status, tries, last answer
  kiln preview "<schedule>" [--tz <Zone>] [--count 5]   the next fire times, in the zone's wall clock with UTC offsets
  kiln secret set <name>                store a secret; the value is read from standard input (typed unechoed on a
                                        terminal, or \`kiln secret set NAME < file\`), never from an argument
  kiln secret list                      your secrets' names (values are never shown)
  kiln secret rm <name>                 remove a secret
  kiln login [--issuer <url>] [--client-id <id>] [--audience <api>] [--scope "openid offline_access"]
             [--audience-param auto|audience|resource] [--server <url>]
                                        sign in at the identity provider (OAuth device flow: open the printed
                                        URL, confirm the code) and store the token; flags default to
                                        KILN_OIDC_ISSUER, KILN_OIDC_CLIENT_ID, KILN_OIDC_AUDIENCE, KILN_OIDC_SCOPE,
                                        KILN_OIDC_AUDIENCE_PARAM; the file is KILN_CREDENTIALS_FILE, else
                                        $XDG_CONFIG_HOME/kiln/credentials.json (~/.config/kiln/credentials.json)
  kiln logout                           revoke the stored refresh token and remove the stored credentials
  kiln whoami                           the user Kiln sees for your token (its subject)
  --json (with jobs, history, pause, resume, delete, ticks, deliveries, preview, secret): the result as JSON on stdout`;

/** Where the CLI writes and what it reads; process.* in production, captured in tests. */
export interface CliIo {
  stdout: TextStream;
  stderr: TextStream;
  env: Record<string, string | undefined>;
  /** Where `kiln secret set` reads the value; process.stdin when absent. */
  stdin?: SecretSource;
}

/** Runs one client command; resolves with the process's exit code (never throws). */
export async function runCli(command: CliCommand, argv: string[], io: CliIo): Promise<number> {
  const out = new Output(io.stdout, io.stderr, io.env);
  let client: KilnClient | null = null;
  let tokenSource: TokenSource | null = null;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: 'string', short: 's' },
        token: { type: 'string', short: 't' },
        follow: { type: 'boolean', short: 'f', default: false },
        after: { type: 'string' },
        limit: { type: 'string' },
        issuer: { type: 'string' },
        'client-id': { type: 'string' },
        audience: { type: 'string' },
        'audience-param': { type: 'string' },
        scope: { type: 'string' },
        'trust-server': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        tz: { type: 'string' },
        count: { type: 'string' },
      },
    });
    const ctx: commands.CommandContext = {
      out,
      client: async () => {
        if (client === null) ({ client, source: tokenSource } = await clientFrom(values, io.env));
        return client;
      },
    };
    const follow = values.follow ?? false;
    const json = values.json ?? false;
    switch (command) {
      case 'submit':
        return await commands.submit(ctx, positionals, { follow });
      case 'validate':
        return await commands.validate(ctx, positionals);
      case 'jobs':
        return await commands.jobs(ctx, { json });
      case 'history':
        return await commands.history(ctx, positionals, { limit: count(values.limit, '--limit', 20), json });
      case 'logs':
        return await commands.logs(ctx, positionals, { follow, after: count(values.after, '--after', 0) });
      case 'status':
        return await commands.status(ctx, positionals);
      case 'trigger':
        return await commands.trigger(ctx, positionals, { follow });
      case 'cancel':
        return await commands.cancel(ctx, positionals);
      case 'pause':
        return await jobCommands.pause(ctx, positionals, { json });
      case 'resume':
        return await jobCommands.resume(ctx, positionals, { json });
      case 'delete':
        return await jobCommands.remove(ctx, positionals, { json });
      case 'ticks':
        return await jobCommands.ticks(ctx, positionals, { json, limit: count(values.limit, '--limit', 20), after: values.after ?? null });
      case 'deliveries':
        return await deliveries(ctx, positionals, { json, limit: count(values.limit, '--limit', 20) });
      case 'preview':
        return await preview(ctx, positionals, { json, tz: values.tz, count: count(values.count, '--count', 5) });
      case 'secret':
        return await secret(ctx, positionals, { json, stdin: io.stdin ?? process.stdin, stderr: io.stderr });
      case 'login':
        return await login(ctx, values, io.env);
      case 'logout':
        return await logout(ctx, io.env);
      case 'whoami':
        return await whoami(ctx);
      default:
        throw new UsageError(`unknown command "${String(command)}"`);
    }
  } catch (err) {
    out.stopSpinner();
    return report(out, err, tokenSource);
  } finally {
    await (client as KilnClient | null)?.close();
  }
}

function count(raw: string | undefined, flag: string, def: number): number {
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new UsageError(`${flag} takes a whole number, got "${raw}"`);
  return Number(raw);
}

function report(out: Output, err: unknown, tokenSource: TokenSource | null): number {
  const red = (s: string) => out.paintErr('red', s);
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    out.note(`${red('kiln:')} ${(err as Error).message}\n\n${CLI_USAGE}`);
    return 2;
  }
  if (err instanceof KilnApiError) {
    const hint = err.code !== 'UNAUTHENTICATED' ? '' : tokenSource === 'login' ? ' (the token from `kiln login` was refused: run `kiln login` again, or check --audience)' : ' (check --token or KILN_TOKEN)';
    out.note(`${red('kiln:')} ${err.message} [${err.code}]${hint}`);
    return 1;
  }
  if (err instanceof LoginError || err instanceof SecretInputError) {
    out.note(`${red('kiln:')} ${err.message}`);
    return 1;
  }
  if (err instanceof KilnSocketClosedError) {
    out.note(`${red('kiln:')} ${err.message}${err.code === 4403 ? ' (token refused or expired)' : ''}`);
    return 1;
  }
  const cause = (err as { cause?: { code?: string } }).cause?.code;
  const message = cause === 'ECONNREFUSED' ? 'cannot reach the server (connection refused): is `kiln start` running? (--server, KILN_URL)' : (err as Error).message;
  out.note(`${red('kiln:')} ${message}`);
  return 1;
}
