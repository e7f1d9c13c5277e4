// Types text into the page a few characters at a time, as the terminal
// client does: `bufferSize` characters every `stepMs`, paced against the
// clock so the time spent typing does not add up. The pace can change at
// any moment and takes effect at the next step.
//
// Text is appended to a Text node, never parsed as HTML, and counted in
// characters (code points), so a character is never typed in halves.

import type { Pace } from "./settings";

/** How far behind schedule typing may fall and still catch up, as in the terminal. */
const CATCH_UP_LIMIT_MS = 50;

const encoder = new TextEncoder();

export class Typist {
  /** Characters received and not yet typed. */
  private pending: string[] = [];
  private next = 0;
  private due = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ended = false;
  private stopped = false;
  private whenHungry: (() => void) | undefined;
  private whenDone: (() => void) | undefined;
  /** UTF-8 bytes typed so far. */
  typedBytes = 0;

  constructor(
    private readonly out: Text,
    private pace: Pace,
    private readonly onTyped: () => void,
  ) {}

  /** Characters waiting to be typed. */
  get backlog(): number {
    return this.pending.length - this.next;
  }

  /** Queues text for typing. */
  push(text: string): void {
    if (this.stopped || text === "") return;
    if (this.next > 4096 && this.next * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.next);
      this.next = 0;
    }
    for (const char of text) this.pending.push(char);
    // One step after the last, or now if the story kept us waiting longer.
    if (this.timer === undefined) this.schedule(this.due + this.pace.stepMs);
  }

  /** Resolves once everything queued is typed: the time to read more. */
  hungry(): Promise<void> {
    if (this.backlog === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => (this.whenHungry = resolve));
  }

  /** No more text will come: resolves once the last of it is typed. */
  end(): Promise<void> {
    this.ended = true;
    if (this.backlog === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => (this.whenDone = resolve));
  }

  /** Stops typing at once, leaving what was not typed. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.settle();
  }

  /** Changes the pace; the next step follows the new one. */
  setPace(pace: Pace): void {
    const old = this.pace.stepMs;
    this.pace = pace;
    if (pace.stepMs !== old && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      // The next step is one new step after the last one typed.
      this.schedule(this.due - old + pace.stepMs);
    }
  }

  private schedule(at: number): void {
    const now = performance.now();
    // Too far behind (the story kept us waiting): restart from now.
    this.due = at < now - CATCH_UP_LIMIT_MS ? now : at;
    this.timer = setTimeout(() => this.step(), Math.max(0, this.due - now));
  }

  private step(): void {
    this.timer = undefined;
    if (this.stopped) return;
    // With no pause between steps, everything that has arrived is typed.
    const take = this.pace.stepMs === 0 ? this.backlog : Math.min(this.pace.bufferSize, this.backlog);
    if (take > 0) {
      const text = this.pending.slice(this.next, this.next + take).join("");
      this.next += take;
      this.out.appendData(text);
      this.typedBytes += encoder.encode(text).length;
      this.onTyped();
    }
    if (this.backlog > 0) {
      this.schedule(this.due + this.pace.stepMs);
    } else {
      this.settle();
    }
  }

  /** Tells whoever waits that the queue is empty. */
  private settle(): void {
    const hungry = this.whenHungry;
    this.whenHungry = undefined;
    hungry?.();
    if (this.ended || this.stopped) {
      const done = this.whenDone;
      this.whenDone = undefined;
      done?.();
    }
  }
}
