/**
 * An Aho-Corasick automaton over bytes: finds every occurrence of any of a set of byte patterns in
 * one pass, in time linear in the text whatever the number of patterns (docs/design.md#masking).
 *
 * Written here rather than taken from npm: the packages found (modern-ahocorasick,
 * @monyone/aho-corasick) match JavaScript strings (UTF-16) given whole, with a JavaScript object
 * or Map per trie node. Masking needs raw bytes fed chunk by chunk with the state kept between
 * chunks, and a thousand secrets of a KiB make millions of nodes: here a node is a few entries of
 * typed arrays (about 19 bytes), built once per run.
 *
 * Layout: nodes are numbered breadth first (root 0), so a node's fail link always points to a
 * lower number, and the shallowest nodes come first; those (whole levels, while their rows fit in
 * DENSE_ENTRIES) get a full transition row, since they have many children each and a search
 * spends most of its steps there; the deeper ones list their children, which are contiguous
 * because patterns are inserted in sorted order.
 */

/**
 * Entries of the full transition rows (1 MiB): a row has one entry per byte class (the bytes the
 * patterns use, and one class for all others), so base64 forms take rows of 66 entries and the
 * first two levels or more get rows. Measured with 1,000 secrets: rows down to depth 2 mask about
 * four times as fast as rows for the root and its children only (64 KiB), and about as fast as
 * with one secret.
 */
const DENSE_ENTRIES = 1 << 18;

/** How often the build looks at the clock, in nodes (a power of two). */
const STEPS_PER_YIELD = 4096;

export class ByteAutomaton {
  /** The byte on the edge into each node. */
  private label: Uint8Array;
  /** Each node's first child and how many (children of one node are numbered consecutively). */
  private childStart: Int32Array;
  private childCount: Uint16Array;
  private fail: Int32Array;
  /** Length of the longest pattern that ends at this node (itself or along its fail links); 0 = none. */
  out: Int32Array;
  /** Length of the text a node stands for: how far back a match still in progress may start. */
  depth: Int32Array;
  /** Each byte's class: 0 for bytes no pattern uses (they lead back to the root), else 1 to classes - 1. */
  private readonly classOf = new Uint16Array(256);
  private classes = 1;
  /** Nodes below this number have a full row in `delta`, of `classes` entries. */
  private denseCount = 1;
  private delta = new Int32Array(0);
  /** Length of the longest pattern. */
  readonly maxLength: number;

  /** Allocates for `patterns`; nothing is built until `work()` has run to its end. */
  private constructor(private readonly sorted: readonly Buffer[]) {
    let total = 1;
    let maxLength = 0;
    for (const p of sorted) {
      total += p.length;
      maxLength = Math.max(maxLength, p.length);
    }
    this.maxLength = maxLength;
    this.label = new Uint8Array(total);
    this.childStart = new Int32Array(total);
    this.childCount = new Uint16Array(total);
    this.fail = new Int32Array(total);
    this.out = new Int32Array(total);
    this.depth = new Int32Array(total);
  }

  /**
   * Builds the automaton of `patterns` (non-empty byte strings; duplicates are fine), yielding
   * every so often so that a caller may let the event loop through (see runInSlices).
   */
  static *build(patterns: readonly Buffer[]): Generator<void, ByteAutomaton> {
    const a = new ByteAutomaton([...patterns].sort(Buffer.compare));
    yield* a.work();
    return a;
  }

  /** Builds the trie, its fail links and dense rows, yielding every level and every STEPS_PER_YIELD nodes. */
  private *work(): Generator<void> {
    for (const p of this.sorted) {
      for (const byte of p) if (this.classOf[byte] === 0) this.classOf[byte] = this.classes++;
      yield;
    }
    const size = yield* this.insertLevelByLevel(this.sorted);
    this.denseCount = Math.max(1, this.shallowNodes(size));
    this.delta = new Int32Array(this.denseCount * this.classes);
    yield* this.linkFailures(size);
    // Arrays were sized for every pattern byte; shared prefixes (a padded and an unpadded base64
    // form) leave part unused, which a run would otherwise keep for its whole length.
    if (size < this.label.length) {
      this.label = this.label.slice(0, size);
      this.childStart = this.childStart.slice(0, size);
      this.childCount = this.childCount.slice(0, size);
      this.fail = this.fail.slice(0, size);
      this.out = this.out.slice(0, size);
      this.depth = this.depth.slice(0, size);
    }
  }

  /**
   * Builds the trie one depth at a time: the nodes come out breadth first, and since the patterns
   * are sorted, a node's children are created one after another. Returns the number of nodes.
   */
  private *insertLevelByLevel(sorted: readonly Buffer[]): Generator<void, number> {
    const at = new Int32Array(sorted.length); // each pattern's node so far (root)
    let active = sorted.map((_, i) => i);
    let size = 1;
    for (let d = 0; active.length > 0; d++) {
      const next: number[] = [];
      for (const i of active) {
        const p = sorted[i]!;
        const parent = at[i]!;
        const byte = p[d]!;
        // Sorted input: the child with this byte, if any, is the last one the parent got.
        const count = this.childCount[parent]!;
        let child = count > 0 ? this.childStart[parent]! + count - 1 : -1;
        if (child < 0 || this.label[child] !== byte) {
          child = size++;
          if (count === 0) this.childStart[parent] = child;
          this.childCount[parent] = count + 1;
          this.label[child] = byte;
          this.depth[child] = d + 1;
        }
        at[i] = child;
        if (p.length === d + 1) this.out[child] = p.length;
        else next.push(i);
      }
      active = next;
      yield;
    }
    return size;
  }

  /** How many of the first nodes (whole levels) have rows that fit in DENSE_ENTRIES. */
  private shallowNodes(size: number): number {
    let n = 1;
    const most = Math.floor(DENSE_ENTRIES / this.classes);
    while (n < size && n < most) {
      let end = n;
      const level = this.depth[n]!;
      while (end < size && this.depth[end] === level) end++;
      if (end > most) break;
      n = end;
    }
    return n;
  }

  /** Fail links, outputs along them, and the dense rows, in breadth-first order. */
  private *linkFailures(size: number): Generator<void> {
    const { childStart, childCount, label, fail, out, delta, classOf, classes } = this;
    for (let s = 0; s < size; s++) {
      const first = childStart[s]!;
      const count = childCount[s]!;
      for (let c = first; c < first + count; c++) {
        const f = s === 0 ? 0 : this.next(fail[s]!, label[c]!);
        fail[c] = f;
        if (out[f]! > out[c]!) out[c] = out[f]!;
      }
      if (s < this.denseCount) {
        const row = s * classes;
        const failRow = fail[s]! * classes;
        for (let k = 0; k < classes; k++) delta[row + k] = s === 0 ? 0 : delta[failRow + k]!;
        for (let c = first; c < first + count; c++) delta[row + classOf[label[c]!]!] = c;
      }
      if ((s & (STEPS_PER_YIELD - 1)) === 0) yield;
    }
  }

  /** The node after reading `byte` in node `s`. */
  next(s: number, byte: number): number {
    for (;;) {
      if (s < this.denseCount) return this.delta[s * this.classes + this.classOf[byte]!]!;
      const first = this.childStart[s]!;
      const end = first + this.childCount[s]!;
      for (let c = first; c < end; c++) if (this.label[c] === byte) return c;
      s = this.fail[s]!;
    }
  }
}
