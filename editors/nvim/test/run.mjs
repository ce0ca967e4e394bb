// run.mjs — runs the Neovim plugin's headless spec (ask_spec.lua) against a
// real kvasird (the fixture of editors/vscode/test/daemon.mjs: temporary XDG
// dirs, a temporary git repo, the stub generator). The relay is
// `kvasir bridge` when the CLI (KVASIR_CLI) implements it, otherwise the
// node relay with the same contract (editors/vscode/dist/bridge.js).
// Exit 0 = pass, 1 = fail, 77 = skipped (no nvim >= 0.7).
//   node run.mjs [SPEC.lua] [--model GGUF]   (with --model: the real engine)
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { startDaemon, writeTestLog } from "../../vscode/test/daemon.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const plugin = path.resolve(here, "..");
const nvim = process.env.NVIM_BIN || "nvim";
const v = spawnSync(nvim, ["--version"], { encoding: "utf8" });
const m = v.stdout && v.stdout.match(/NVIM v(\d+)\.(\d+)/);
if (!m || (+m[1] === 0 && +m[2] < 7)) {
  console.log(`SKIP: needs nvim >= 0.7 (${m ? m[0] : "nvim not found"})`);
  process.exit(77);
}

function bridgeCmd() {
  const cli = process.env.KVASIR_CLI;
  if (cli && fs.existsSync(cli)) {
    const h = spawnSync(cli, ["bridge", "--help"], { encoding: "utf8" });
    if (h.status === 0 && !/not implemented/.test(h.stdout + h.stderr)) return [cli, "bridge"];
  }
  return [process.execPath, path.resolve(plugin, "../vscode/dist/bridge.js")];
}

const argv = process.argv.slice(2);
const mi = argv.indexOf("--model");
const model = mi >= 0 ? argv[mi + 1] : null;
const spec = argv.find((a, i) => a.endsWith(".lua") && i !== mi + 1) || "ask_spec.lua";
const d = await startDaemon(model ? { stubMs: 0, model } : { stubMs: 20 });
let rc = 1;
try {
  const cmd = bridgeCmd();
  console.log(`bridge: ${cmd.join(" ")}`);
  const logFile = path.join(d.dir, "app.log");
  writeTestLog(logFile);
  const env = { ...d.env, KVASIR_TEST_REPO: d.repo, KVASIR_TEST_BRIDGE: JSON.stringify(cmd), KVASIR_TEST_LOG: logFile };
  const args = ["--headless", "-u", "NONE", "-i", "NONE", "-n", "--cmd", `set rtp^=${plugin}`,
    "--cmd", "runtime plugin/kvasir.lua", "-c", `luafile ${path.join(here, spec)}`];
  const p = spawn(nvim, args, { env, stdio: ["ignore", "inherit", "inherit"] });
  const timer = setTimeout(() => p.kill("SIGKILL"), model ? 240000 : 120000);
  rc = await new Promise((r) => p.on("exit", (code, sig) => r(code === null ? 1 : code)));
  clearTimeout(timer);
} finally {
  if (rc !== 0) console.log(d.log().slice(-3000));
  await d.stop();
}
process.exit(rc === 0 ? 0 : 1);
