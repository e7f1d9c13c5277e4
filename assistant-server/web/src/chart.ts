// A small live chart of bytes received against bytes typed over time: the
// terminal client's --timeline, drawn as the story types. The gap between
// the two lines is what waits in the page; a flat "received" line while
// "typed" climbs is the page waiting for the server.

/** Samples kept; past this, every other one is dropped. */
const MAX_SAMPLES = 2000;

interface Sample {
  t: number;
  received: number;
  typed: number;
}

export class Chart {
  private samples: Sample[] = [];
  private start = 0;
  private frame = 0;

  constructor(private readonly canvas: HTMLCanvasElement) {}

  /** Starts a new call's chart. */
  reset(): void {
    this.samples = [];
    this.start = performance.now();
    this.request();
  }

  /** Records the counts now; the chart is redrawn at the next frame. */
  record(received: number, typed: number): void {
    if (this.samples.length >= MAX_SAMPLES) {
      this.samples = this.samples.filter((_, i) => i % 2 === 0);
    }
    this.samples.push({ t: (performance.now() - this.start) / 1000, received, typed });
    this.request();
  }

  private request(): void {
    if (this.frame === 0) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }
  }

  private draw(): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const { width, height } = this.canvas;
    const pad = { left: 56, right: 8, top: 8, bottom: 20 };
    ctx.clearRect(0, 0, width, height);
    const last = this.samples[this.samples.length - 1];
    const maxT = Math.max(1, last?.t ?? 0);
    const maxY = Math.max(1024, last?.received ?? 0);
    const x = (t: number) => pad.left + (t / maxT) * (width - pad.left - pad.right);
    const y = (v: number) => height - pad.bottom - (v / maxY) * (height - pad.top - pad.bottom);

    const style = getComputedStyle(this.canvas);
    ctx.strokeStyle = ctx.fillStyle = style.color;
    ctx.globalAlpha = 0.5;
    ctx.font = "11px system-ui, sans-serif";
    ctx.beginPath();
    ctx.moveTo(pad.left, pad.top);
    ctx.lineTo(pad.left, height - pad.bottom);
    ctx.lineTo(width - pad.right, height - pad.bottom);
    ctx.stroke();
    ctx.fillText(`${Math.round(maxY / 1024)} KiB`, 4, pad.top + 10);
    ctx.fillText("0", pad.left - 12, height - pad.bottom);
    ctx.fillText(`${maxT.toFixed(1)} s`, width - pad.right - 36, height - 6);
    ctx.globalAlpha = 1;

    for (const [key, color] of [["received", "--received"], ["typed", "--typed"]] as const) {
      ctx.strokeStyle = style.getPropertyValue(color).trim() || "gray";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x(0), y(0));
      for (const sample of this.samples) ctx.lineTo(x(sample.t), y(sample[key]));
      ctx.stroke();
    }
  }
}
