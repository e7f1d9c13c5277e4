// The page's settings: read from the form, and first from the query string
// (user_name, institution, story, buffer_size, step_sec, autostart=1), so a
// link or a test can set up a call without clicking.

/** How the story is typed; changed live while it types. */
export interface Pace {
  /** Characters typed at each step: at least 1. */
  bufferSize: number;
  /** Milliseconds between steps: 0 types text as soon as it arrives. */
  stepMs: number;
}

/** The terminal client's defaults. */
export const DEFAULT_PACE: Pace = { bufferSize: 5, stepMs: 100 };

/** Parses a buffer size as the terminal client does: a whole number of at least 1. */
export function parseBufferSize(text: string): number | undefined {
  const value = Number(text.trim());
  return Number.isInteger(value) && value >= 1 ? value : undefined;
}

/** Parses a step in seconds: a number of at least 0, returned in milliseconds. */
export function parseStepMs(text: string): number | undefined {
  const trimmed = text.trim();
  const value = Number(trimmed);
  return trimmed !== "" && Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
}

/** Fills the form's fields from the query string; says whether to start at once. */
export function applyQuery(search: string, field: (name: string) => HTMLInputElement | HTMLSelectElement | null): boolean {
  const query = new URLSearchParams(search);
  for (const name of ["user_name", "institution", "buffer_size", "step_sec"]) {
    const value = query.get(name);
    const input = field(name);
    if (value !== null && input) input.value = value;
  }
  return query.get("autostart") === "1";
}
