/**
 * `--name value` / `--name=value` / `--flag` parsing for benchmarks. Unknown names are refused
 * so a typo does not silently run the defaults.
 */
export type ArgSpec = Record<string, { default: string; help: string }>;

export function parseArgs<S extends ArgSpec>(argv: string[], spec: S): { [K in keyof S]: string } {
  const out: Record<string, string> = Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, v.default]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      console.log(Object.entries(spec).map(([k, v]) => `  --${k} <${v.default}>\t${v.help}`).join('\n'));
      process.exit(0);
    }
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1]! in spec)) throw new Error(`unknown argument "${arg}"; known: ${Object.keys(spec).map((k) => `--${k}`).join(' ')}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    out[m[1]!] = value;
  }
  return out as { [K in keyof S]: string };
}

export function intList(text: string, name: string): number[] {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--${name}: positive integers separated by commas, got "${text}"`);
  return list;
}

export function positive(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: a positive number, got "${text}"`);
  return n;
}
