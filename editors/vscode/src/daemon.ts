/*
 * daemon.ts — the extension's one connection to kvasird: connects lazily,
 * reconnects on the next request after a failure, polls `status` for the
 * status-bar item and starts the daemon (`kvasir daemon`) on request.
 *
 * Invariants: at most one connection attempt at a time (callers share the
 * promise); a failed connection is dropped, never reused; the status poll
 * never throws and never stacks (one poll in flight at most); every
 * request is asynchronous, nothing here blocks the extension host.
 */
import * as vscode from "vscode";
import { spawn } from "child_process";
import { KvasirClient, KvasirError, Codes } from "./protocol";
import { DaemonView, statusText } from "./logic";

export class Daemon implements vscode.Disposable {
  private client: KvasirClient | null = null;
  private connecting: Promise<KvasirClient> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  readonly item: vscode.StatusBarItem;
  view: DaemonView = { state: "connecting" };
  private changed = new vscode.EventEmitter<DaemonView>();
  readonly onDidChange = this.changed.event;

  constructor(private out: vscode.OutputChannel) {
    this.item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.item.command = "kvasir.statusClick";
    this.render();
    this.item.show();
  }

  private cfg() {
    const c = vscode.workspace.getConfiguration("kvasir");
    return {
      socketPath: c.get<string>("socketPath") || undefined,
      secretPath: c.get<string>("secretPath") || undefined,
      kvasirPath: c.get<string>("kvasirPath") || "kvasir",
      pollSeconds: Math.max(2, c.get<number>("statusPollSeconds") || 5),
    };
  }

  private render(): void {
    const s = statusText(this.view);
    this.item.text = s.text;
    this.item.tooltip = s.tooltip;
    this.changed.fire(this.view);
  }

  update(patch: Partial<DaemonView>): void {
    this.view = { ...this.view, ...patch };
    this.render();
  }

  private noteError(e: any): void {
    const code = e instanceof KvasirError ? e.code : 0;
    const msg = String(e && e.message);
    if (code === Codes.ENOTFOUND && /key is missing/.test(msg)) this.update({ state: "no-key", message: msg });
    else if (code === Codes.ENOTFOUND) this.update({ state: "down", message: msg });
    else this.update({ state: "error", message: msg });
  }

  /* The connected client (connecting if needed). Rejects with a KvasirError. */
  async get(): Promise<KvasirClient> {
    if (this.client && !this.client.isClosed) return this.client;
    if (this.connecting) return this.connecting;
    const c = this.cfg();
    this.connecting = KvasirClient.connect({ socketPath: c.socketPath, secretPath: c.secretPath })
      .then((cl) => {
        this.client = cl;
        cl.on("close", (e: Error | null) => {
          if (this.client === cl) this.client = null;
          if (e) this.out.appendLine(`connection closed: ${e.message}`);
          this.update({ state: "down", message: e ? e.message : "the daemon closed the connection" });
        });
        cl.on("notification", (method: string, p: any) => {
          if (method === "progress" && p && typeof p.total === "number") {
            this.update({ indexing: p.done >= p.total ? null : { done: p.done, total: p.total, repo: p.repo } });
          }
        });
        this.update({ state: "connected", message: undefined });
        return cl;
      })
      .catch((e) => {
        this.noteError(e);
        throw e;
      })
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  /* Polls status now and then every statusPollSeconds. */
  startPolling(): void {
    const tick = async () => {
      if (this.polling) return;
      this.polling = true;
      try {
        const cl = await this.get();
        const st = await cl.call("status", {}, { timeoutMs: 5000 });
        this.update({ state: "connected", status: st });
      } catch (e) {
        this.noteError(e);
      } finally {
        this.polling = false;
      }
    };
    void tick();
    this.timer = setInterval(tick, this.cfg().pollSeconds * 1000);
  }

  /* Runs `kvasir daemon` (it detaches once listening) and reconnects. */
  async start(): Promise<boolean> {
    const exe = this.cfg().kvasirPath;
    this.out.appendLine(`starting: ${exe} daemon`);
    this.update({ state: "connecting" });
    const ok = await new Promise<boolean>((resolve) => {
      let err = "";
      const p = spawn(exe, ["daemon"], { stdio: ["ignore", "ignore", "pipe"], detached: true });
      p.stderr!.on("data", (d) => (err += d));
      p.on("error", (e) => {
        this.out.appendLine(`cannot run ${exe}: ${e.message}`);
        vscode.window.showErrorMessage(`kvasir: cannot run \`${exe} daemon\`: ${e.message}. Set kvasir.kvasirPath.`);
        resolve(false);
      });
      p.on("exit", (code) => {
        if (code !== 0 && err) this.out.appendLine(err.trim());
        resolve(code === 0);
      });
      p.unref();
    });
    if (!ok) {
      this.update({ state: "down" });
      return false;
    }
    try {
      await this.get();
      return true;
    } catch {
      return false;
    }
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.client) this.client.close();
    this.item.dispose();
    this.changed.dispose();
  }
}
