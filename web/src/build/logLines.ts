/** A log line's stream, stored as a byte per line. */
export const STREAMS = ['STDOUT', 'STDERR', 'SYSTEM', 'SERVICE'] as const;
export type Stream = (typeof STREAMS)[number];

/** One run of consecutive lines of the same step (steps run in order, so usually one per step). */
export interface Section {
  /** 0-based step index, or null for Kiln's own lines outside a step. */
  step: number | null;
  /** Index (seq - 1) of its first line. */
  start: number;
  /** Index past its last line. */
  end: number;
}

/**
 * An execution's log as compact columns indexed by seq - 1 (seq is gapless from 1): one string
 * per line and a byte each for its stream and step, never one object per line or per span, so
 * a 100,000-line log costs little more than its text. Lines may arrive out of order (pages
 * fetched at once, then the live tail); `count` is the gapless prefix, the part shown.
 */
export class LogLines {
  texts: string[] = [];
  private streams = new Uint8Array(1024);
  /** step + 1; 0 for none. */
  private steps = new Int32Array(1024);
  /** Lines from seq 1 with no gap. */
  count = 0;
  /** Bumped by every change of `count`, for React to notice. */
  version = 0;
  readonly sections: Section[] = [];

  put(seq: number, stream: Stream, step: number | null, text: string): void {
    const i = seq - 1;
    if (i < 0 || this.texts[i] !== undefined) return; // a line already held: replays never repeat it
    this.grow(i + 1);
    this.texts[i] = text;
    this.streams[i] = STREAMS.indexOf(stream);
    this.steps[i] = step === null ? 0 : step + 1;
  }

  /** Extends `count` over the lines now held without a gap and the sections over them; true when it moved. */
  settle(): boolean {
    const before = this.count;
    while (this.texts[this.count] !== undefined) {
      const step = this.stepOf(this.count);
      const last = this.sections.at(-1);
      if (last !== undefined && last.step === step) last.end = this.count + 1;
      else this.sections.push({ step, start: this.count, end: this.count + 1 });
      this.count++;
    }
    if (this.count !== before) this.version++;
    return this.count !== before;
  }

  stepOf(i: number): number | null {
    const s = this.steps[i]!;
    return s === 0 ? null : s - 1;
  }

  streamOf(i: number): Stream {
    return STREAMS[this.streams[i]!]!;
  }

  /** The section holding line index `i`. */
  sectionOf(i: number): number {
    let lo = 0;
    let hi = this.sections.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.sections[mid]!.start <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private grow(size: number): void {
    if (size <= this.streams.length) return;
    let cap = this.streams.length;
    while (cap < size) cap *= 2;
    const streams = new Uint8Array(cap);
    streams.set(this.streams);
    const steps = new Int32Array(cap);
    steps.set(this.steps);
    this.streams = streams;
    this.steps = steps;
  }
}

/**
 * The rows the viewer shows: for each section a header, then its lines when it is open. A row
 * >= 0 is a line index; a row < 0 is the header of section -row - 1. Rebuilt when sections
 * grow or fold: one Int32Array, however long the log.
 */
export function displayRows(lines: LogLines, open: (section: number) => boolean): Int32Array {
  let size = lines.sections.length;
  lines.sections.forEach((s, k) => {
    if (open(k)) size += s.end - s.start;
  });
  const rows = new Int32Array(size);
  let r = 0;
  lines.sections.forEach((s, k) => {
    rows[r++] = -k - 1;
    if (!open(k)) return;
    for (let i = s.start; i < s.end; i++) rows[r++] = i;
  });
  return rows;
}

/** The row showing line index `i` (its section open), or -1. */
export function rowOfLine(rows: Int32Array, i: number): number {
  // Rows hold increasing line indexes between headers: a binary search over the line rows.
  let lo = 0;
  let hi = rows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    let m = mid;
    while (m <= hi && rows[m]! < 0) m++;
    if (m > hi) {
      hi = mid - 1;
      continue;
    }
    if (rows[m] === i) return m;
    if (rows[m]! < i) lo = m + 1;
    else hi = mid - 1;
  }
  return -1;
}
