// chat.e2e.mjs (slow) — the packaged extension (kvasir.vsix) in a real VS
// Code: code-server serving a temporary repository, driven by headless
// Chromium (puppeteer-core). Asks a question through the command palette,
// waits for the chat view to show the streamed answer with citations,
// saves a screenshot, clicks a citation and checks the editor opened the
// cited file. Against a real kvasird (stub generator) in temporary XDG dirs.
//
//   node e2e/chat.e2e.mjs VSIX SCREENSHOT.png
// Env: CHROMIUM (default /usr/bin/chromium), KVASIRD (see test/daemon.mjs).
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { startDaemon } from "../test/daemon.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "node_modules", "x.js"));
const puppeteer = require("puppeteer-core");
const { KvasirClient } = createRequire(import.meta.url)("../dist/protocol.js");
const codeServer = path.join(here, "node_modules", ".bin", "code-server");
const [vsix, shot] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const step = (m) => console.log(`[e2e ${new Date().toISOString().slice(11, 19)}] ${m}`);

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const d = await startDaemon({ stubMs: 30 });
let cs, browser, rc = 1;
try {
  const c = await KvasirClient.connect({ socketPath: d.socketPath, secretPath: d.secretPath });
  await c.call("repo.add", { path: d.repo, wait: true });
  c.close();
  step("daemon up, repo indexed");

  const udd = path.join(d.dir, "code-user"), exts = path.join(d.dir, "code-exts");
  fs.mkdirSync(path.join(udd, "User"), { recursive: true });
  fs.writeFileSync(path.join(udd, "User", "settings.json"), JSON.stringify({
    "workbench.startupEditor": "none", "security.workspace.trust.enabled": false,
    "kvasir.statusPollSeconds": 2, "kvasir.maxTokens": 12, "telemetry.telemetryLevel": "off",
    "workbench.tips.enabled": false, "extensions.autoCheckUpdates": false,
  }));
  const inst = spawnSync(codeServer, ["--user-data-dir", udd, "--extensions-dir", exts, "--install-extension", vsix], { env: d.env, encoding: "utf8" });
  if (inst.status !== 0) throw new Error(`install-extension failed: ${inst.stdout}${inst.stderr}`);
  step("extension installed: " + inst.stdout.trim().split("\n").pop());

  const port = await freePort();
  cs = spawn(codeServer, ["--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--user-data-dir", udd, "--extensions-dir", exts,
    "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", d.repo], { env: d.env, stdio: ["ignore", "pipe", "pipe"] });
  let cslog = "";
  cs.stdout.on("data", (x) => (cslog += x));
  cs.stderr.on("data", (x) => (cslog += x));
  for (let t = 0; !/HTTP server listening/.test(cslog); t++) {
    if (t > 300 || cs.exitCode !== null) throw new Error(`code-server did not start: ${cslog}`);
    await sleep(100);
  }
  step(`code-server on ${port}`);

  browser = await puppeteer.launch({
    executablePath: chromium, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"],
    defaultViewport: { width: 1400, height: 900 },
  });
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(d.repo)}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector(".monaco-workbench", { timeout: 60000 });
  step("workbench loaded");
  // the status-bar item appears once the extension has activated and polled
  await page.waitForFunction(() => [...document.querySelectorAll(".statusbar-item")].some((e) => /kvasir/.test(e.textContent || "") || /kvasir/.test(e.getAttribute("aria-label") || "")), { timeout: 60000 });
  step("extension active (status bar item present)");

  // open the asked-about file, then ask through the command palette
  await page.keyboard.press("F1");
  await page.waitForSelector(".quick-input-widget input", { visible: true });
  await page.keyboard.type("kvasir: Ask about repository");
  await sleep(800);
  await page.keyboard.press("Enter");
  await sleep(800);
  await page.keyboard.type("where are the quarterly ledger totals reconciled?");
  await page.keyboard.press("Enter");
  step("question sent");

  // the chat webview: nested iframes; find the frame holding #log
  let chat = null;
  for (let t = 0; t < 300 && !chat; t++) {
    for (const f of page.frames()) {
      try {
        if (await f.$("#log .cites a")) { chat = f; break; }
      } catch { /* detached frame */ }
    }
    if (!chat) await sleep(100);
  }
  if (!chat) throw new Error("the chat view never showed citations");
  await chat.waitForFunction(() => /answered by/.test(document.querySelector(".foot")?.textContent || ""), { timeout: 30000 });
  const seen = await chat.evaluate(() => ({
    question: document.querySelector(".user")?.textContent,
    answer: document.querySelector(".answer .body")?.textContent,
    cites: [...document.querySelectorAll(".cites a")].map((a) => a.textContent),
    links: [...document.querySelectorAll(".answer .body a")].length,
    foot: document.querySelector(".foot")?.textContent,
  }));
  step("chat: " + JSON.stringify(seen));
  await page.screenshot({ path: shot });
  step(`screenshot: ${shot}`);
  if (!seen.cites.some((x) => x.startsWith("src/ledger.c:"))) throw new Error("no src/ledger.c citation");

  // clicking the citation opens the file in the editor
  await chat.click(".cites a");
  await page.waitForFunction(() => [...document.querySelectorAll(".tab")].some((t) => /ledger\.c/.test(t.textContent || "")), { timeout: 20000 });
  step("citation click opened src/ledger.c");
  await sleep(500);
  await page.screenshot({ path: shot.replace(/\.png$/, "-opened.png") });
  rc = 0;
} catch (e) {
  console.error(`e2e failed: ${e && e.stack}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (cs && cs.exitCode === null) cs.kill("SIGTERM");
  await d.stop();
}
process.exit(rc);
