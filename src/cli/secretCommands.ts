import { DeleteSecretDocument, KilnApiError, SecretsDocument, SetSecretDocument } from '@kiln/sdk';
import { ENV_NAME_PATTERN } from '../jobfile/values.js';
import { UsageError } from './clientConfig.js';
import type { CommandContext, ExitCode } from './commands.js';
import type { JsonFlag } from './jobCommands.js';
import { table } from './output.js';
import { readSecret, type SecretSource } from './secretInput.js';

/** `kiln secret set|list|rm`: the caller's secrets, which jobs list under `secrets:`. */
export async function secret(ctx: CommandContext, [action, ...rest]: string[], opts: JsonFlag & { stdin: SecretSource; stderr: { write(text: string): unknown } }): Promise<ExitCode> {
  switch (action) {
    case 'set':
      return set(ctx, rest, opts);
    case 'list':
    case 'ls':
      if (rest.length > 0) throw new UsageError('`kiln secret list` takes no arguments');
      return list(ctx, opts);
    case 'rm':
    case 'delete':
      return rm(ctx, rest, opts);
    default:
      throw new UsageError(action === undefined ? 'say what to do: kiln secret set|list|rm' : `unknown action "secret ${action}": kiln secret set|list|rm`);
  }
}

function checkName(name: string | undefined): string {
  if (!name) throw new UsageError('name the secret, e.g. kiln secret set DEPLOY_TOKEN < token.txt');
  if (!ENV_NAME_PATTERN.test(name)) throw new UsageError(`"${name.slice(0, 80)}" is not a secret name: letters, digits and _, not starting with a digit (it becomes an environment variable)`);
  return name;
}

/**
 * `kiln secret set <name>`: the value comes from standard input, typed with echo off on a
 * terminal. A value given as an argument is refused before anything is read or sent: it would
 * already be in the process list and the shell's history.
 */
async function set(ctx: CommandContext, [raw, ...extra]: string[], opts: JsonFlag & { stdin: SecretSource; stderr: { write(text: string): unknown } }): Promise<ExitCode> {
  const name = checkName(raw);
  if (extra.length > 0) {
    throw new UsageError(
      'the value is read from standard input, never from an argument (arguments show in the process list and your shell history): type it when asked, or `kiln secret set NAME < file`',
    );
  }
  // The client first: a missing token is reported before the user types anything.
  const client = await ctx.client();
  const value = await readSecret(opts.stdin, opts.stderr, `value for ${name} (not echoed): `);
  const { setSecret } = await client.request(SetSecretDocument, { name, value });
  if (opts.json) ctx.out.json(setSecret);
  else ctx.out.line(`${setSecret.name} ${ctx.out.paint('green', 'stored')} (${setSecret.createdAt === setSecret.updatedAt ? 'new' : 'replaced'})`);
  return 0;
}

/** `kiln secret list`: names and dates; values are never readable back. */
async function list(ctx: CommandContext, opts: JsonFlag): Promise<ExitCode> {
  const { secrets } = await (await ctx.client()).request(SecretsDocument, {});
  if (opts.json) {
    ctx.out.json(secrets);
    return 0;
  }
  if (secrets.length === 0) {
    ctx.out.note('no secrets yet: `kiln secret set NAME` stores one (the value from standard input)');
    return 0;
  }
  const rows = [['NAME', 'UPDATED', 'CREATED']];
  for (const s of secrets) rows.push([s.name, s.updatedAt, s.createdAt]);
  for (const line of table(rows)) ctx.out.line(line);
  return 0;
}

/** `kiln secret rm <name>`: exit 1 when there was no secret by that name. */
async function rm(ctx: CommandContext, [raw, ...extra]: string[], opts: JsonFlag): Promise<ExitCode> {
  const name = checkName(raw);
  if (extra.length > 0) throw new UsageError('`kiln secret rm` removes one secret: name only one');
  const { deleteSecret } = await (await ctx.client()).request(DeleteSecretDocument, { name });
  if (!deleteSecret) throw new KilnApiError(`no secret "${name}"`, 'NOT_FOUND');
  if (opts.json) ctx.out.json({ deleted: true, name });
  else ctx.out.line(`${name} ${ctx.out.paint('red', 'removed')}`);
  return 0;
}
