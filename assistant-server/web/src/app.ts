// The story page: calls TellStory over gRPC-Web and types the story as it
// arrives, with the pace adjustable while it types, a Cancel button, and a
// chart of bytes received against bytes typed.
//
// It reads the next message only once everything before it is typed, as
// the tutorial's client does, so a slow pace holds the stream back.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { Chart } from "./chart";
import { AssistantService } from "./gen/assistant_pb";
import { DEFAULT_PACE, type Pace, applyQuery, parseBufferSize, parseStepMs } from "./settings";
import { Typist } from "./typist";

/** gRPC's own names for its status codes, as the terminal client prints them. */
const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const form = byId<HTMLFormElement>("settings");
const userName = byId<HTMLInputElement>("user_name");
const institution = byId<HTMLInputElement>("institution");
const storyPicker = byId<HTMLSelectElement>("story_name");
const bufferSize = byId<HTMLInputElement>("buffer_size");
const stepSec = byId<HTMLInputElement>("step_sec");
const startButton = byId<HTMLButtonElement>("start");
const cancelButton = byId<HTMLButtonElement>("cancel");
const storyOut = byId<HTMLPreElement>("story");
const statusOut = byId<HTMLParagraphElement>("status");
const counts = byId<HTMLSpanElement>("counts");
const chart = new Chart(byId<HTMLCanvasElement>("chart"));

const client = createClient(
  AssistantService,
  createGrpcWebTransport({ baseUrl: location.origin, useBinaryFormat: true }),
);

/** Whether the story box follows the newest text: until the reader scrolls up. */
let following = true;
storyOut.addEventListener("scroll", () => {
  following = storyOut.scrollHeight - storyOut.scrollTop - storyOut.clientHeight < 40;
});

/** The call in progress, if any. */
let current: { abort: AbortController; typist: Typist; byUser: boolean } | undefined;

/** The pace the fields say; a field that does not parse keeps the last good value. */
let pace: Pace = { ...DEFAULT_PACE };
function readPace(): Pace {
  pace = {
    bufferSize: parseBufferSize(bufferSize.value) ?? pace.bufferSize,
    stepMs: parseStepMs(stepSec.value) ?? pace.stepMs,
  };
  bufferSize.setCustomValidity(parseBufferSize(bufferSize.value) ? "" : "a whole number, 1 or more");
  stepSec.setCustomValidity(parseStepMs(stepSec.value) !== undefined ? "" : "seconds, 0 or more");
  return pace;
}

function setStatus(text: string, failed = false): void {
  statusOut.textContent = text;
  statusOut.classList.toggle("failed", failed);
}

function describe(err: unknown): string {
  const error = ConnectError.from(err);
  return `An error occurred: ${CODE_NAMES[error.code] ?? error.code}: ${error.rawMessage}`;
}

/** Fills the story picker from ListStories, selecting `wanted` if given. */
async function listStories(wanted: string | null): Promise<void> {
  try {
    const { stories } = await client.listStories({}, { timeoutMs: 5000 });
    storyPicker.replaceChildren(
      ...stories.map((story) => {
        const title = story.title ? ` — ${story.title}` : "";
        return new Option(`${story.name}${title}`, story.name);
      }),
    );
  } catch (err) {
    setStatus(`Cannot list the stories. ${describe(err)}`, true);
  }
  if (wanted !== null) {
    if (![...storyPicker.options].some((option) => option.value === wanted)) {
      storyPicker.add(new Option(wanted, wanted));
    }
    storyPicker.value = wanted;
  }
}

/** Tells one story, from the request to its ending line. */
async function tell(): Promise<void> {
  if (current) {
    // A new story replaces the one typing: that one ends as cancelled.
    current.byUser = true;
    current.abort.abort();
    current.typist.stop();
  }
  const text = document.createTextNode("");
  storyOut.replaceChildren(text);
  following = true;
  setStatus("");
  chart.reset();
  let received = 0;
  const show = () => {
    if (current !== call) return;
    chart.record(received, typist.typedBytes);
    counts.textContent = `${received} bytes received, ${typist.typedBytes} typed`;
    // Keep the newest text in view, unless the reader scrolled up.
    if (following) storyOut.scrollTop = storyOut.scrollHeight;
  };
  const typist = new Typist(text, readPace(), show);
  const call = { abort: new AbortController(), typist, byUser: false };
  current = call;
  startButton.disabled = true;
  cancelButton.disabled = false;

  const decoder = new TextDecoder("utf-8");
  let ending: string;
  let failed = false;
  try {
    const request = { userName: userName.value, institution: institution.value, story: storyPicker.value };
    let numbered = false;
    let first = true;
    for await (const message of client.tellStory(request, { signal: call.abort.signal })) {
      // A server that versions its story numbers its bytes: check that
      // none were lost or repeated.
      if (first) numbered = message.storyVersion !== "";
      first = false;
      if (numbered && message.offset !== BigInt(received)) {
        throw new ConnectError(`expected the bytes from ${received}, got them from ${message.offset}`, Code.DataLoss);
      }
      received += message.textChunk.length;
      typist.push(decoder.decode(message.textChunk, { stream: true }));
      show();
      await typist.hungry();
    }
    typist.push(decoder.decode());
    ending = "Story finished.";
  } catch (err) {
    const error = ConnectError.from(err);
    if (call.byUser) {
      ending = "Stream cancelled by user.";
    } else if (error.code === Code.Canceled) {
      typist.push(decoder.decode());
      ending = "Stream cancelled by server. Exiting gracefully.";
    } else {
      ending = describe(error);
      failed = true;
    }
  }
  // The ending shows once what arrived is typed, as in the terminal.
  if (failed || call.byUser) typist.stop();
  await typist.end();
  show();
  if (current === call) {
    setStatus(ending, failed);
    current = undefined;
    startButton.disabled = false;
    cancelButton.disabled = true;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  void tell();
});
cancelButton.addEventListener("click", () => {
  if (!current) return;
  current.byUser = true;
  current.abort.abort();
  current.typist.stop();
});
// A field takes effect a moment after the last keystroke, so that typing
// "0.05" does not pass through "0" (type everything at once) on the way.
let settle: ReturnType<typeof setTimeout> | undefined;
for (const field of [bufferSize, stepSec]) {
  field.addEventListener("input", () => {
    clearTimeout(settle);
    settle = setTimeout(() => current?.typist.setPace(readPace()), 300);
  });
  field.addEventListener("change", () => {
    clearTimeout(settle);
    current?.typist.setPace(readPace());
  });
}

const autostart = applyQuery(location.search, (name) => document.getElementById(name) as HTMLInputElement | null);
readPace();
const listed = listStories(new URLSearchParams(location.search).get("story"));
if (autostart) void listed.then(tell);
