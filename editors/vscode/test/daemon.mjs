// daemon.mjs — test fixture: a real kvasird (--foreground --stub-generator)
// in temporary XDG dirs, serving a temporary git repository with known
// content. KVASIRD names the binary (ctest passes it); otherwise the first
// of ../../build*/daemon/kvasird that exists.
import { spawn, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");

export function findKvasird() {
  if (process.env.KVASIRD) return process.env.KVASIRD;
  for (const b of ["build-edt", "build", "build-dmn"]) {
    const p = path.join(root, b, "daemon", "kvasird");
    if (fs.existsSync(p)) return p;
  }
  throw new Error("kvasird not found: build it (cmake --build <dir> --target kvasird) or set KVASIRD");
}

// Files of the test repository; tests assert citations against these lines.
export const REPO_FILES = {
  "src/ledger.c":
    "#include <stdio.h>\n" +
    "\n" +
    "/* Reconciles the quarterly ledger totals. */\n" +
    "int reconcile_ledger(int *totals, int n) {\n" +
    "  int sum = 0;\n" +
    "  for (int i = 0; i < n; i++) sum += totals[i];\n" +
    "  return sum;\n" +
    "}\n",
  "src/util.c": "int add_one(int x) { return x + 1; }\n",
  "README.md": "# demo\nA tiny repository for the editor tests.\n",
};

// model: a GGUF for the real engine (then stubMs should be 0).
export async function startDaemon({ stubMs = 20, workers = 2, model = null } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvedt-"));
  const env = {
    ...process.env,
    HOME: dir,
    XDG_RUNTIME_DIR: path.join(dir, "run"),
    XDG_CONFIG_HOME: path.join(dir, "config"),
    XDG_DATA_HOME: path.join(dir, "data"),
    XDG_CACHE_HOME: path.join(dir, "cache"),
    KVASIR_MODEL: model || path.join(dir, "no-model.gguf"),
    GIT_CONFIG_NOSYSTEM: "1",
  };
  fs.mkdirSync(env.XDG_RUNTIME_DIR, { mode: 0o700 });
  const repo = path.join(dir, "repo");
  for (const [p, text] of Object.entries(REPO_FILES)) {
    fs.mkdirSync(path.dirname(path.join(repo, p)), { recursive: true });
    fs.writeFileSync(path.join(repo, p), text);
  }
  const git = (...a) => execFileSync("git", ["-C", repo, ...a], { env, stdio: "pipe" });
  git("init", "-q");
  git("add", "-A");
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init");
  const bin = findKvasird();
  const args = ["--foreground", "--no-watch", "--workers", String(workers)];
  if (stubMs > 0) args.push("--stub-generator", String(stubMs));
  const proc = spawn(bin, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const socketPath = path.join(env.XDG_RUNTIME_DIR, "kvasir", "kvasird.sock");
  const secretPath = path.join(env.XDG_CONFIG_HOME, "kvasir", "keys", "secret");
  const t0 = Date.now();
  while (!fs.existsSync(socketPath)) {
    if (proc.exitCode !== null) throw new Error(`kvasird exited with ${proc.exitCode}: ${log}`);
    if (Date.now() - t0 > 15000) throw new Error(`kvasird did not listen within 15 s: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir, env, repo, socketPath, secretPath, proc,
    log: () => log,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => {
          const t = setTimeout(() => { proc.kill("SIGKILL"); r(); }, 5000);
          proc.once("exit", () => { clearTimeout(t); r(); });
        });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// A log whose one anomaly is known: 50 INFO lines, then 3 ERROR lines
// starting at line 51 (triage must rank that cluster first).
export function writeTestLog(file) {
  let s = "";
  for (let i = 0; i < 50; i++) s += `2026-11-23 10:00:${String(i).padStart(2, "0")} INFO worker ${i} finished job ${i * 7} in ${i}ms\n`;
  for (let i = 0; i < 3; i++) s += `2026-11-23 10:01:0${i} ERROR db connection to 10.0.0.${i} refused after ${i} retries\n`;
  fs.writeFileSync(file, s);
  return { errorLine: 51, template: "db connection to <*> refused after <*> retries" };
}
