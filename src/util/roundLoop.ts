/**
 * Rounds of work, one at a time: started by `wake` and every `pollMs`. A wake-up during a round
 * makes another right after it, so none is lost and none overlaps. With `gatherMs`, a round starts
 * that long after the wake-up that asked for it, and wake-ups meanwhile join it (work arriving
 * together is handled together). `round` handles its own errors.
 */
export class RoundLoop {
  private timer: NodeJS.Timeout | null = null;
  private gathering: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private again = false;
  private halted = false;

  constructor(
    private readonly round: () => Promise<void>,
    private readonly pollMs: number,
    private readonly gatherMs = 0,
  ) {}

  /** True once stop was called: a round in flight should end early. */
  get stopped(): boolean {
    return this.halted;
  }

  start(): void {
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.timer.unref();
    this.wake();
  }

  wake(): void {
    if (this.halted) return;
    if (this.current !== null) {
      this.again = true;
      return;
    }
    if (this.gathering !== null) return;
    if (this.gatherMs <= 0) {
      this.run();
      return;
    }
    this.gathering = setTimeout(() => {
      this.gathering = null;
      this.run();
    }, this.gatherMs);
  }

  private run(): void {
    if (this.halted) return;
    this.current = this.round().finally(() => {
      this.current = null;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  }

  /** Starts no more rounds; resolves after the one in flight. */
  async stop(): Promise<void> {
    this.halted = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.gathering !== null) clearTimeout(this.gathering);
    this.gathering = null;
    await this.current;
  }
}
