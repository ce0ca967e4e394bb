/*
 * logic.ts — the editor-independent parts of the extension, kept apart so
 * node:test can check them without VS Code: how a question about a
 * selection/file/repository is put into `ask` params, how citations and
 * `path:start-end` references in answer text become links, and how the
 * daemon's `status` becomes the status-bar text.
 *
 * Invariants: pure functions of their inputs; paths in citations are
 * relative to the repository the daemon answered from (absolute ones are
 * kept); line numbers are 1-based and clamped to >= 1.
 */

export interface Citation {
  path: string;
  start_line: number;
  end_line: number;
  symbol?: string;
  score?: number;
}

export interface Selection {
  file: string;       /* absolute path */
  relPath: string;    /* relative to the repository (or the file name) */
  startLine: number;  /* 1-based, inclusive */
  endLine: number;
  text: string;
  languageId?: string;
}

export type AskScope = "selection" | "file" | "repository";

/* The params of `ask` for a question in a scope. */
export function askParams(question: string, scope: AskScope, opts: { repo?: string; file?: string; selection?: Selection; maxTokens?: number }): Record<string, unknown> {
  let q = question.trim();
  if (scope === "selection" && opts.selection) {
    const s = opts.selection;
    q += `\n\nAbout ${s.relPath}:${s.startLine}-${s.endLine}:\n\`\`\`${s.languageId || ""}\n${s.text}\n\`\`\``;
  } else if (scope === "file" && opts.file) {
    q += `\n\n(About the file ${opts.selection ? opts.selection.relPath : opts.file}.)`;
  }
  const p: Record<string, unknown> = { question: q };
  if (opts.repo) p.repo = opts.repo;
  if ((scope === "selection" || scope === "file") && opts.file) p.file = opts.file;
  if (opts.maxTokens) p.max_tokens = opts.maxTokens;
  return p;
}

/* Validates citations from the daemon (untrusted shape) into Citation[]. */
export function parseCitations(v: unknown): Citation[] {
  if (!Array.isArray(v)) return [];
  const out: Citation[] = [];
  for (const c of v) {
    if (!c || typeof c !== "object") continue;
    const o = c as Record<string, unknown>;
    if (typeof o.path !== "string" || !o.path) continue;
    const l0 = Math.max(1, Math.floor(Number(o.start_line) || 1));
    const l1 = Math.max(l0, Math.floor(Number(o.end_line) || l0));
    const cit: Citation = { path: o.path, start_line: l0, end_line: l1 };
    if (typeof o.symbol === "string" && o.symbol) cit.symbol = o.symbol;
    if (typeof o.score === "number") cit.score = o.score;
    out.push(cit);
  }
  return out;
}

/* The facts of an answer (ask.facts: definitions with their users and
 * tests; untrusted shape) as citations, definitions first, then `cites`. */
export function factsCitations(facts: unknown, cites: Citation[]): Citation[] {
  const out: Citation[] = [];
  for (const f of Array.isArray(facts) ? facts : []) {
    if (!f || typeof f !== "object") continue;
    const o = f as Record<string, unknown>;
    if (typeof o.path !== "string" || !o.path || typeof o.symbol !== "string") continue;
    out.push(...parseCitations([{ path: o.path, start_line: o.start_line, end_line: o.end_line, symbol: o.symbol }]));
    for (const key of ["callers", "tests"]) {
      const refs = Array.isArray(o[key]) ? (o[key] as unknown[]) : [];
      for (const r of refs) {
        if (!r || typeof r !== "object") continue;
        const x = r as Record<string, unknown>;
        const what = `${key === "tests" ? "test of" : "uses"} ${o.symbol}${typeof x.in === "string" ? ` in ${x.in}` : ""}`;
        out.push(...parseCitations([{ path: x.path, start_line: x.line, end_line: x.line, symbol: what }]));
      }
    }
  }
  /* a citation already listed (the answer's citations start with the
   * definitions it names) is not listed twice */
  const key = (c: Citation) => `${c.path}:${c.start_line}-${c.end_line}`;
  const seen = new Set(out.map(key));
  for (const c of cites) if (!seen.has(key(c))) { seen.add(key(c)); out.push(c); }
  return out;
}

/* Resolves a citation's path against the repository root. */
export function citationFile(repo: string | undefined, path: string): string {
  if (path.startsWith("/") || !repo) return path;
  return repo.replace(/\/+$/, "") + "/" + path;
}

export type Segment = { text: string } | { text: string; path: string; line: number };

/* Splits answer text into plain runs and `path:start[-end]` references
 * (paths with an extension, optionally with directories). */
export function linkify(text: string): Segment[] {
  const re = /([A-Za-z0-9_.\-\/]*[A-Za-z0-9_\-]\.[A-Za-z0-9]+):(\d+)(?:-(\d+))?/g;
  const out: Segment[] = [];
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: m[0], path: m[1], line: Math.max(1, parseInt(m[2], 10)) });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

export interface DaemonView {
  state: "connected" | "down" | "no-key" | "error" | "connecting";
  message?: string;
  indexing?: { done: number; total: number; repo?: string } | null;
  tier?: string | null;       /* the tier (or generator) and model of the last answer (answeredBy) */
  status?: any;               /* the last `status` result */
}

/* The status-bar text and tooltip for a daemon view. */
export function statusText(v: DaemonView): { text: string; tooltip: string } {
  const tier = v.tier ? ` · ${v.tier}` : "";
  switch (v.state) {
    case "down":
      return { text: "$(debug-disconnect) kvasir: off", tooltip: `${v.message || "the daemon is not running"} — click to start it` };
    case "no-key":
      return { text: "$(key) kvasir: no key", tooltip: `${v.message || "the key is missing"} — click to start the daemon (it creates the key)` };
    case "error":
      return { text: "$(warning) kvasir", tooltip: v.message || "error" };
    case "connecting":
      return { text: "$(sync~spin) kvasir", tooltip: "connecting to the daemon" };
  }
  const st = v.status || {};
  const jobs = st.jobs || {};
  const model = st.model && st.model.state ? `model ${st.model.state}` : "no model";
  let text = "$(hubot) kvasir";
  if (v.indexing && v.indexing.total > 0) {
    text = `$(sync~spin) kvasir ${v.indexing.done}/${v.indexing.total}`;
  } else if ((jobs.running_background || 0) + (jobs.queued_background || 0) > 0) {
    text = "$(sync~spin) kvasir: indexing";
  }
  const tooltip = [
    `kvasird ${st.version || "?"} (pid ${st.pid || "?"}), ${model}`,
    `${st.repos ?? 0} repositories, ${jobs.active ?? 0} active jobs`,
    v.tier ? `last answer: ${v.tier}` : "",
  ].filter(Boolean).join("\n");
  return { text: text + tier, tooltip };
}

/* The tier (or generator) that answered, from an `ask` result, with the
 * model that answered for it: "pro (qwen2.5-coder-7b)". */
export function answeredBy(res: any): string | null {
  if (!res || typeof res !== "object") return null;
  const model = typeof res.model === "string" && res.model ? ` (${res.model})` : "";
  if (typeof res.tier === "string" && res.tier) return res.tier + model;
  if (typeof res.generator === "string" && res.generator) return res.generator === "none" ? "no model" : res.generator;
  return null;
}

/* Human text for an error, with the fix when there is one. */
export function errorText(e: any): { text: string; canStart: boolean } {
  const msg = String((e && e.message) || e);
  const code = e && typeof e.code === "number" ? e.code : 0;
  const canStart = code === -5 && /not running|key is missing/.test(msg);
  return { text: msg, canStart };
}

/* The daemon's log store for a file: "editor-<basename>", a plain name
 * (no '/', no leading '.', <= 64 bytes) as logs.* requires. */
export function logStoreName(file: string): string {
  const base = (file.split("/").pop() || "log").replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 48);
  return "editor-" + (base || "log");
}

/* A cluster's rate over the triage's time range (logs.triage `bins`, one
 * count per bin) as a line of block characters scaled to the fullest bin,
 * a space for an empty one: what `kvasir logs triage` prints (log_sparkline). */
export function sparkline(bins: unknown): string {
  if (!Array.isArray(bins)) return "";
  const v = bins.map((b) => (typeof b === "number" && b > 0 ? b : 0));
  const mx = Math.max(0, ...v);
  const B = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588";
  return v.map((b) => (b === 0 ? " " : B[Math.floor((b * 7) / mx)])).join("");
}

/* A logs.triage result (the logs module's triage JSON: kind, level, count,
 * template, why, first_file, first_line, bins, ...) as text lines (best
 * first) and citations (file:line of each cluster's first occurrence). With
 * `repo` given to logs.triage, each item's `code` sites ({path, line, score}:
 * the literal that prints the template, path relative to `r.repo`) become a
 * line each and `code` citations (relative to the repository). */
export function triageView(r: any): { lines: string[]; citations: Citation[]; code: Citation[] } {
  const items: any[] = r && Array.isArray(r.items) ? r.items : [];
  const lines: string[] = [];
  const citations: Citation[] = [];
  const code: Citation[] = [];
  if (!items.length) lines.push("nothing stands out in this log");
  items.forEach((it, i) => {
    if (!it || typeof it !== "object") return;
    const count = typeof it.count === "number" ? ` ×${it.count}` : "";
    lines.push(`${i + 1}. [${it.kind || "?"}] ${it.level || ""}${count}  ${it.template || ""}`.replace(/\s+$/, ""));
    if (typeof it.why === "string" && it.why) lines.push(`   ${it.why}`);
    const spark = sparkline(it.bins);
    if (spark.trim()) lines.push(`   ${spark}`);
    if (typeof it.first_file === "string" && it.first_file) {
      const l = Math.max(1, Math.floor(Number(it.first_line) || 1));
      const cit: Citation = { path: it.first_file, start_line: l, end_line: l };
      if (typeof it.template === "string") cit.symbol = it.template.slice(0, 60);
      citations.push(cit);
    }
    for (const c of Array.isArray(it.code) ? it.code : []) {
      if (!c || typeof c.path !== "string" || !c.path) continue;
      const l = Math.max(1, Math.floor(Number(c.line) || 1));
      lines.push(`   code ${c.path}:${l}`);
      const cit: Citation = { path: c.path, start_line: l, end_line: l };
      if (typeof it.template === "string") cit.symbol = it.template.slice(0, 60);
      if (typeof c.score === "number") cit.score = c.score;
      code.push(cit);
    }
  });
  return { lines, citations, code };
}
