// The story page in a real browser (Debian's Chromium, driven by
// playwright-core), against a real assistant-server:
//   1. the page loads, and ListStories fills the story picker;
//   2. autostart with buffer_size=1024&step_sec=0 types greeting, story and
//      ending exactly, and shows the server's CANCELLED ending;
//   3. a story split inside its UTF-8 characters, with markup in it, shows
//      whole and as text;
//   4. Cancel mid-story makes the server log "Client went away";
//   5. changing the step mid-story changes the typing pace, measured on
//      the page.
//
// Usage: node test/browser.mjs [--screenshot FILE]
// ASSISTANT_SERVER names the server binary (default: the workspace's
// target/debug/assistant-server); CHROMIUM the browser (/usr/bin/chromium).

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const workspace = resolve(here, "../../..");
const serverBin = process.env.ASSISTANT_SERVER ?? join(workspace, "target/debug/assistant-server");
const screenshot = process.argv.includes("--screenshot")
  ? resolve(process.argv[process.argv.indexOf("--screenshot") + 1])
  : undefined;

const GREETING = "Hi Peter S from SUSTech! Here's your story:\n\n";
const ENDING = "\nThat's it! Hope you like the story~\n";
const CANCELLED = "Stream cancelled by server. Exiting gracefully.";

let failures = 0;
const servers = [];
// Removed at the end, whatever happens.
const scratch = mkdtempSync(join(tmpdir(), "assistant-web-"));

function check(name, ok, detail = "") {
  console.log(`${ok ? "PASS" : "FAIL"} ${name}${ok || !detail ? "" : `: ${detail}`}`);
  if (!ok) failures += 1;
}

/** Starts a server with `args`; resolves once its page is served, with its URL and log. */
function startServer(args) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(serverBin, ["--addr", "127.0.0.1:0", "--web-addr", "127.0.0.1:0", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const server = { child, log: "", url: undefined };
    servers.push(server);
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${server.log}`)), 30_000);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (data) => {
      server.log += data;
      const found = /Story page at (http:\/\/\S+)/.exec(server.log);
      if (found && !server.url) {
        server.url = found[1];
        clearTimeout(timer);
        resolvePromise(server);
      }
    });
    child.on("exit", (code) => reject(new Error(`the server exited (${code}):\n${server.log}`)));
  });
}

/** Waits until `predicate` holds, or `ms` pass. */
async function until(predicate, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const text = (page, id) => page.evaluate((id) => document.getElementById(id).textContent, id);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

try {
  const alice = readFileSync(join(workspace, "stories/alice.txt"), "utf8");
  const fast = await startServer(["--think-time", "0", "--chunk-delay", "0"]);
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(String(err)));

  // 1. The page loads, and ListStories fills the picker.
  const loaded = await page.goto(fast.url);
  check("the page loads", loaded?.status() === 200 && (await page.title()).includes("assistant"));
  const listed = await until(() => page.evaluate(() => document.getElementById("story_name").textContent.includes("Alice")));
  check("ListStories fills the story picker", listed, await text(page, "story_name"));

  // 2. The whole story, typed as fast as it arrives.
  await page.goto(`${fast.url}?autostart=1&buffer_size=1024&step_sec=0`);
  await until(async () => (await text(page, "status")) !== "");
  const typed = await text(page, "story");
  const expected = GREETING + alice + ENDING;
  check("greeting, story and ending are typed exactly", typed === expected,
    `${typed.length} characters, not ${expected.length}`);
  check("the server's CANCELLED ending is shown", (await text(page, "status")) === CANCELLED, await text(page, "status"));

  // 3. UTF-8 split across chunks, and markup, shown whole and as text.
  const tricky = "Zoë's café: ½ 東京 🦀 <b>not bold</b> & <script>alert(1)</script>\n".repeat(20);
  writeFileSync(join(scratch, "tricky.txt"), tricky);
  const split = await startServer(["--think-time", "0", "--chunk-delay", "0", "--chunk-size", "5", "--story", join(scratch, "tricky.txt")]);
  await page.goto(`${split.url}?autostart=1&buffer_size=3&step_sec=0&user_name=Zoë&institution=${encodeURIComponent("<i>U</i>")}`);
  await until(async () => (await text(page, "status")) !== "");
  const shown = await text(page, "story");
  check("characters split across chunks show whole",
    shown === `Hi Zoë from <i>U</i>! Here's your story:\n\n${tricky}${ENDING}`, JSON.stringify(shown.slice(0, 120)));
  check("the story is never read as HTML",
    await page.evaluate(() => document.querySelectorAll("#story *").length === 0));

  // 4. Cancel mid-story: the server sees the client go.
  const paced = await startServer(["--think-time", "0"]);
  await page.goto(`${paced.url}?autostart=1&buffer_size=5&step_sec=0.05`);
  await until(async () => (await text(page, "story")).length > 200);
  await page.click("#cancel");
  const wentAway = await until(() => paced.log.includes("Client went away"), 10_000);
  check("Cancel makes the server log \"Client went away\"", wentAway, paced.log.split("\n").slice(-5).join("\n"));
  check("Cancel shows the user's ending", (await text(page, "status")) === "Stream cancelled by user.", await text(page, "status"));

  // 5. The pace changes while the story types.
  await page.goto(`${paced.url}?autostart=1&buffer_size=5&step_sec=0.1`);
  await until(async () => (await text(page, "story")).length > 60);
  const rate = async (ms) => {
    const before = (await text(page, "story")).length;
    const start = Date.now();
    await new Promise((r) => setTimeout(r, ms));
    return ((await text(page, "story")).length - before) / ((Date.now() - start) / 1000);
  };
  const slow = await rate(1500);
  // Typed key by key, as a person would: "0.02" passes through "0".
  await page.fill("#step_sec", "");
  await page.type("#step_sec", "0.02", { delay: 60 });
  const early = (await text(page, "story")).length;
  await new Promise((r) => setTimeout(r, 600));
  const passing = (await text(page, "story")).length - early;
  const quick = await rate(1500);
  // 5 characters every 0.1 s is 50 a second; every 0.02 s, 250.
  console.log(`  typing: ${slow.toFixed(0)} then ${quick.toFixed(0)} characters a second`);
  check("editing the step does not dump the story on the way", passing < 400, `${passing} characters in 0.6 s`);
  check("changing the step mid-story changes the pace",
    slow > 30 && slow < 70 && quick > 3 * slow, `${slow.toFixed(0)} then ${quick.toFixed(0)} characters a second`);
  if (screenshot) {
    await until(async () => (await text(page, "story")).length > 3000);
    await page.screenshot({ path: screenshot });
    console.log(`Screenshot written to ${screenshot}`);
  }
  await page.click("#cancel");
  check("the page raised no errors", pageErrors.length === 0, pageErrors.join("; "));
} catch (err) {
  check("the browser tests ran", false, String(err?.stack ?? err));
} finally {
  rmSync(scratch, { recursive: true, force: true });
  await browser.close();
  for (const server of servers) server.child.kill("SIGTERM");
}

console.log(failures === 0 ? "All browser checks passed." : `${failures} browser check(s) failed.`);
process.exit(failures === 0 ? 0 : 1);
