/**
 * Runs `fn` once, soon, however many times it is asked for before it runs: once this turn of the
 * event loop is over (the callbacks of one turn, such as the runs one statement handed over
 * ending together, then share one call), or after a delay. A request while one is pending joins it.
 */
export class Soon {
  private immediate: NodeJS.Immediate | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly fn: () => void) {}

  /** Whether a call is pending. */
  get pending(): boolean {
    return this.immediate !== null || this.timer !== null;
  }

  /** Asks for a call after `delayMs`, or once this turn is over (0); joins a pending one. */
  request(delayMs = 0): void {
    if (this.pending) return;
    if (delayMs > 0) this.timer = setTimeout(this.fire, delayMs);
    else this.immediate = setImmediate(this.fire);
  }

  /** A pending delayed call happens once this turn is over instead. */
  hurry(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.request();
  }

  private readonly fire = (): void => {
    this.immediate = null;
    this.timer = null;
    this.fn();
  };
}
