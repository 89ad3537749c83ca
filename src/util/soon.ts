/**
 * Runs `fn` once, soon, however many times it is asked for before it runs: once this turn of the
 * event loop is over (the callbacks of one turn, such as the runs one statement handed over
 * ending together, then share one call), or after a delay. A request while a call is pending
 * joins it, and brings it forward when it asks for sooner.
 */
export class Soon {
  private immediate: NodeJS.Immediate | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** When the pending timer fires (epoch ms). */
  private dueAt = 0;

  constructor(private readonly fn: () => void) {}

  /** Whether a call is pending. */
  get pending(): boolean {
    return this.immediate !== null || this.timer !== null;
  }

  /** Asks for a call within `delayMs`, or once this turn is over (0). */
  request(delayMs = 0): void {
    if (this.immediate !== null) return;
    if (this.timer !== null) {
      if (this.dueAt <= Date.now() + delayMs) return;
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (delayMs > 0) {
      this.dueAt = Date.now() + delayMs;
      this.timer = setTimeout(this.fire, delayMs);
    } else {
      this.immediate = setImmediate(this.fire);
    }
  }

  private readonly fire = (): void => {
    this.immediate = null;
    this.timer = null;
    this.fn();
  };
}
