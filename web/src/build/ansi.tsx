import Anser from 'anser';
import type { CSSProperties, ReactNode } from 'react';

/** The 16 standard colours' names, as anser names them (`ansi-red`, `ansi-bright-red`). */
const NAMED = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

/** A 256-colour palette entry as CSS: 0-15 are the named classes' colours, then the 6x6x6 cube, then greys. */
function paletteColor(n: number): string {
  if (n < 16) return `var(--ansi-${n >= 8 ? 'bright-' : ''}${NAMED[n % 8]})`;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const c = n - 16;
  const level = (x: number) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(c / 36))}, ${level(Math.floor(c / 6) % 6)}, ${level(c % 6)})`;
}

/** A segment's colour: a class for the named colours (themeable in CSS), a style for the others. */
function colour(name: string | null, truecolor: string | null, layer: 'fg' | 'bg', classes: string[], style: CSSProperties): void {
  if (name === null) return;
  const prop = layer === 'fg' ? 'color' : 'backgroundColor';
  if (name === 'ansi-truecolor' && truecolor !== null) style[prop] = `rgb(${truecolor})`;
  else if (name.startsWith('ansi-palette-')) style[prop] = paletteColor(Number(name.slice('ansi-palette-'.length)));
  else classes.push(`${name}-${layer}`);
}

/**
 * Marks each occurrence of `needle` (lower case) in `text` with <mark>; `text` is shown as text,
 * never as HTML.
 */
function marked(text: string, needle: string | null, key: number): ReactNode {
  if (needle === null || needle.length === 0) return text;
  const lower = text.toLowerCase();
  const parts: ReactNode[] = [];
  let from = 0;
  for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, at + needle.length)) {
    if (at > from) parts.push(text.slice(from, at));
    parts.push(<mark key={`${key}-${at}`}>{text.slice(at, at + needle.length)}</mark>);
    from = at + needle.length;
  }
  if (parts.length === 0) return text;
  if (from < text.length) parts.push(text.slice(from));
  return parts;
}

/**
 * One log line with its ANSI colours as React spans (classes `ansi-red-fg`, `ansi-bold`, ...).
 * Parsed only when the line is rendered: the viewer keeps raw text, one string per line.
 */
export function AnsiLine({ text, needle }: { text: string; needle: string | null }): ReactNode {
  if (!text.includes('\u001b')) return marked(text, needle, 0);
  // Segments have no identity but their place: a line's text, hence its segments, never changes.
  return Anser.ansiToJson(text, { use_classes: true, remove_empty: true }).map((seg, i) => {
    const classes: string[] = [];
    const style: CSSProperties = {};
    colour(seg.fg, seg.fg_truecolor, 'fg', classes, style);
    colour(seg.bg, seg.bg_truecolor, 'bg', classes, style);
    for (const d of seg.decorations) classes.push(`ansi-${d}`);
    // biome-ignore lint/suspicious/noArrayIndexKey: see above
    if (classes.length === 0 && Object.keys(style).length === 0) return <span key={i}>{marked(seg.content, needle, i)}</span>;
    return (
      // biome-ignore lint/suspicious/noArrayIndexKey: see above
      <span key={i} className={classes.join(' ') || undefined} style={style}>
        {marked(seg.content, needle, i)}
      </span>
    );
  });
}
