/**
 * What the CLI prints and how: colours and a spinner on a terminal, plain text otherwise (pipes,
 * files, CI logs), so that `kiln logs <id> > build.log` holds exactly the log.
 */

/** A writable text stream, as process.stdout and process.stderr are. */
export interface TextStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

const CODES = { red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39], dim: [2, 22], bold: [1, 22] } as const;
export type Colour = keyof typeof CODES;

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Colours are on for a terminal unless NO_COLOR is set or TERM is dumb; FORCE_COLOR forces them. */
export function wantsColour(stream: TextStream, env: Record<string, string | undefined>): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/** The colour of an execution or step status. */
export function statusColour(status: string): Colour {
  switch (status) {
    case 'SUCCEEDED':
      return 'green';
    case 'FAILED':
    case 'TIMED_OUT':
      return 'red';
    case 'CANCELLED':
    case 'SKIPPED':
      return 'yellow';
    case 'RUNNING':
      return 'cyan';
    default:
      return 'dim';
  }
}

/**
 * The CLI's two streams: results on stdout, progress and problems on stderr. The spinner lives
 * on stderr's last line and only on a terminal; every write clears it first and redraws it after.
 */
export class Output {
  private spinnerText: string | null = null;
  private frame = 0;
  private timer: NodeJS.Timeout | null = null;
  readonly colour: boolean;
  private readonly errColour: boolean;

  constructor(
    private readonly out: TextStream,
    private readonly err: TextStream,
    env: Record<string, string | undefined>,
  ) {
    this.colour = wantsColour(out, env);
    this.errColour = wantsColour(err, env);
  }

  /** Paints `text` when stdout takes colours. */
  paint(colour: Colour, text: string): string {
    return this.colour ? paint(colour, text) : text;
  }

  /** Paints `text` when stderr takes colours. */
  paintErr(colour: Colour, text: string): string {
    return this.errColour ? paint(colour, text) : text;
  }

  /** A status word, coloured for stdout. */
  status(status: string): string {
    return this.paint(statusColour(status), status);
  }

  /** One line of results on stdout. */
  line(text = ''): void {
    this.clearSpinner();
    this.out.write(text + '\n');
    this.drawSpinner();
  }

  /** A command's result as JSON on stdout (`--json`), for scripts: one document, no colours. */
  json(value: unknown): void {
    this.line(JSON.stringify(value, null, 2));
  }

  /** One line of progress or diagnosis on stderr. */
  note(text: string): void {
    this.clearSpinner();
    this.err.write(text + '\n');
    this.drawSpinner();
  }

  /** Shows (or updates) the spinner with `text`; on anything but a terminal it does nothing. */
  spin(text: string): void {
    if (this.err.isTTY !== true) return;
    this.spinnerText = text;
    if (this.timer === null) {
      this.timer = setInterval(() => {
        this.frame = (this.frame + 1) % FRAMES.length;
        this.clearSpinner();
        this.drawSpinner();
      }, 80);
      this.timer.unref();
    }
    this.clearSpinner();
    this.drawSpinner();
  }

  /** Removes the spinner. */
  stopSpinner(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.clearSpinner();
    this.spinnerText = null;
  }

  private clearSpinner(): void {
    if (this.spinnerText !== null) this.err.write('\r\x1b[2K');
  }

  private drawSpinner(): void {
    if (this.spinnerText !== null) this.err.write(`${this.paintErr('cyan', FRAMES[this.frame]!)} ${this.spinnerText}`);
  }
}

function paint(colour: Colour, text: string): string {
  const [open, close] = CODES[colour];
  return `\x1b[${open}m${text}\x1b[${close}m`;
}

/** Left-aligned columns, two spaces apart; colour codes do not count towards widths. */
export function table(rows: string[][]): string[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes on purpose
  const visible = (s: string) => s.replace(/\x1b\[\d+m/g, '').length;
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, visible(cell));
  }
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visible(cell)))).join('  ').trimEnd());
}

/** `4.2s`, `3m05s`, `1h02m`. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
