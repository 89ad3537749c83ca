/**
 * Reading a secret's value: from standard input only, never from an argument (arguments are in
 * the process list and the shell's history). On a terminal the value is typed with echo off;
 * from a pipe or a file it is read to the end.
 */

/** Standard input as the CLI reads it: process.stdin in production, a stream in tests. */
export interface SecretSource extends AsyncIterable<Buffer | string> {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/** A problem with the value typed or piped in (exit 1, no usage text). */
export class SecretInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretInputError';
  }
}

/** Bytes read at most: the server takes 64 KiB, and a bigger input is a mistake (a wrong file). */
export const MAX_SECRET_INPUT_BYTES = 64 * 1024;

/**
 * The value on standard input. From a pipe, one trailing newline (`echo value |`, a file that ends
 * in a newline) is not part of it; anything else is kept as is. On a terminal, `prompt` is shown
 * on `err` and what is typed is not echoed.
 */
export async function readSecret(stdin: SecretSource, err: { write(text: string): unknown }, prompt: string): Promise<string> {
  const value = stdin.isTTY === true ? await readHidden(stdin, err, prompt) : await readPiped(stdin);
  if (value === '') throw new SecretInputError('the value is empty: nothing was stored');
  return value;
}

async function readPiped(stdin: SecretSource): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buf.length;
    if (size > MAX_SECRET_INPUT_BYTES) throw new SecretInputError(`the value on standard input is over ${MAX_SECRET_INPUT_BYTES / 1024} KiB: nothing was stored`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * Reads one line from a terminal in raw mode, so nothing typed is echoed: Enter ends it,
 * Backspace removes the last character, Ctrl-C and Ctrl-D (on an empty line) give up.
 */
function readHidden(stdin: SecretSource, err: { write(text: string): unknown }, prompt: string): Promise<string> {
  if (stdin.setRawMode === undefined) throw new SecretInputError('cannot turn off echo on this terminal: pipe the value in instead (kiln secret set NAME < file)');
  err.write(prompt);
  stdin.setRawMode(true);
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const finish = (outcome: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      err.write('\n');
      outcome();
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish(() => resolve(value));
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) return finish(() => reject(new SecretInputError('cancelled: nothing was stored')));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
        if (Buffer.byteLength(value) > MAX_SECRET_INPUT_BYTES) return finish(() => reject(new SecretInputError('the value is too long: nothing was stored')));
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}
