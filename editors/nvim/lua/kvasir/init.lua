-- kvasir — Neovim (>= 0.7) front end of the private kvasir daemon.
--
--   :[range]KvasirAsk {question}   ask about the repository (the range is
--                                  sent as the code the question is about);
--                                  the answer streams into a floating window,
--                                  the citations go to the quickfix list
--   :KvasirTriage [logfile]        triage a log file (default: this buffer)
--   :KvasirExplain [question]      which tier would answer, and why
--   :KvasirIndex                   register this repository and index it
--   :KvasirStatus / :KvasirCancel / :KvasirStart
--
-- It talks to kvasird only through `kvasir bridge` (rpc.lua), and only sends
-- requests: the daemon applies the project's policy.
--
-- Invariants: nothing blocks the UI — requests are asynchronous and every
-- UI update is scheduled on the main loop; one ask streams at a time (a new
-- one cancels the old); a change to the asking buffer, <C-c> anywhere, or
-- closing the answer window sends `$/cancel`; ghost-text completion (opt-in)
-- cancels on any keypress and never edits the buffer until accepted.
local rpc = require("kvasir.rpc")

local M = {}

local config = {
  kvasir = "kvasir",             -- the CLI (:KvasirStart runs `kvasir daemon`)
  cmd = { "kvasir", "bridge" }, -- the bridge; tests point it at another relay
  env = nil,                     -- extra environment for the bridge
  max_tokens = 256,
  float = { width = 0.6, height = 0.5, border = "rounded" },
  completion = { enabled = false, debounce_ms = 150, max_tokens = 64, accept = "<M-l>" },
}

local state = {
  client = nil,
  ask = nil,      -- {id, buf (answer), win, origin (buffer), text, done, error, canceled}
  last = nil,     -- the last finished ask (tests and :KvasirAsk! reopen it)
  answered_by = nil, -- "tier (model)" of the last answer (M.statusline)
  ghost = nil,    -- {id, buf, ns, text, row, col}
}
M._state = state

local ns = vim.api.nvim_create_namespace("kvasir")
local CANCELED = -7

local function notify(msg, level)
  vim.notify("kvasir: " .. msg, level or vim.log.levels.INFO)
end

-- A daemon-down or missing-key message gets the way out appended.
local function explain_error(err)
  local msg = type(err) == "table" and tostring(err.message) or tostring(err)
  if msg:find("not running", 1, true) or msg:find("key is missing", 1, true) or msg:find("cannot open the secret", 1, true) then
    return msg .. " — run :KvasirStart to start the daemon"
  end
  if msg:find("registered", 1, true) then return msg .. " — run :KvasirIndex in the repository" end
  return msg
end

local function client()
  if state.client and not state.client.closed then return state.client end
  local c, err = rpc.start({
    cmd = config.cmd,
    env = config.env,
    on_exit = function(code, text, had_pending)
      if state.client and state.client.closed then state.client = nil end
      if code ~= 0 and text ~= "" and not had_pending then notify(explain_error(text), vim.log.levels.WARN) end
    end,
  })
  if not c then
    notify(err .. " (is `kvasir` on $PATH? see :help kvasir)", vim.log.levels.ERROR)
    return nil
  end
  state.client = c
  return c
end

-- The repository root of a path (a directory holding .git), or nil.
local function repo_root(path)
  local dir = vim.fn.fnamemodify(path ~= "" and path or vim.fn.getcwd(), ":p:h")
  local git = vim.fn.finddir(".git", dir .. ";")
  if git == "" then git = vim.fn.findfile(".git", dir .. ";") end
  if git == "" then return nil end
  return vim.fn.fnamemodify(git, ":p:h:h"):gsub("/$", "")
end
M.repo_root = repo_root

-- ------------------------------------------------------------ answer window

local function open_float(title)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_option(buf, "bufhidden", "wipe")
  vim.api.nvim_buf_set_option(buf, "filetype", "markdown")
  local cols, rows = vim.o.columns, vim.o.lines
  local w = math.max(20, math.floor(cols * config.float.width))
  local h = math.max(5, math.floor(rows * config.float.height))
  local ok, win = pcall(vim.api.nvim_open_win, buf, false, {
    relative = "editor", width = w, height = h,
    row = math.floor((rows - h) / 2), col = math.floor((cols - w) / 2),
    style = "minimal", border = config.float.border,
  })
  if not ok then win = nil end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "# " .. title, "" })
  for _, key in ipairs({ "q", "<Esc>" }) do
    vim.keymap.set("n", key, function() M.close_answer() end, { buffer = buf, nowait = true })
  end
  return buf, win
end

-- Appends streamed text (which may hold newlines) to the end of buf.
local function append(buf, text)
  if not vim.api.nvim_buf_is_valid(buf) then return end
  local parts = vim.split(text, "\n", { plain = true })
  local last = vim.api.nvim_buf_line_count(buf)
  local cur = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
  parts[1] = cur .. parts[1]
  vim.api.nvim_buf_set_lines(buf, last - 1, last, false, parts)
end

local function set_lines(buf, lines)
  if vim.api.nvim_buf_is_valid(buf) then vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines) end
end

-- --------------------------------------------------------------- quickfix

-- Citations ({path, start_line, end_line, symbol}) to quickfix items; paths
-- are relative to the repository the daemon answered from.
local function citation_items(repo, cites)
  local items = {}
  for _, c in ipairs(cites or {}) do
    if type(c) == "table" and type(c.path) == "string" then
      local file = c.path:sub(1, 1) == "/" and c.path or ((repo or vim.fn.getcwd()) .. "/" .. c.path)
      local text = ("%s:%d-%d"):format(c.path, tonumber(c.start_line) or 1, tonumber(c.end_line) or 1)
      if c.symbol then text = text .. " " .. c.symbol end
      items[#items + 1] = {
        filename = file, lnum = tonumber(c.start_line) or 1, end_lnum = tonumber(c.end_line), col = 1, text = text,
      }
    end
  end
  return items
end
M._citation_items = citation_items

-- The facts of an answer (ask.facts: definitions, their callers and tests)
-- as citations, definitions first, then the excerpts retrieval found.
local function facts_citations(facts, cites)
  local out = {}
  for _, f in ipairs(facts or {}) do
    if type(f) == "table" and type(f.path) == "string" then
      out[#out + 1] = { path = f.path, start_line = f.start_line, end_line = f.end_line, symbol = f.symbol }
      for _, key in ipairs({ "callers", "tests" }) do
        for _, r in ipairs(type(f[key]) == "table" and f[key] or {}) do
          if type(r) == "table" and type(r.path) == "string" then
            out[#out + 1] = { path = r.path, start_line = r.line, end_line = r.line,
              symbol = (key == "tests" and "test " or "uses ") .. f.symbol .. (r["in"] and (" in " .. r["in"]) or "") }
          end
        end
      end
    end
  end
  -- a citation that is already listed (the answer's citations start with
  -- the definitions it names) is not listed twice
  local seen = {}
  for _, c in ipairs(out) do seen[tostring(c.path) .. ":" .. tostring(c.start_line) .. "-" .. tostring(c.end_line)] = true end
  for _, c in ipairs(cites or {}) do
    local key = tostring(c.path) .. ":" .. tostring(c.start_line) .. "-" .. tostring(c.end_line)
    if not seen[key] then
      seen[key] = true
      out[#out + 1] = c
    end
  end
  return out
end
M._facts_citations = facts_citations

local function set_quickfix(title, repo, cites)
  vim.fn.setqflist({}, " ", { title = "kvasir: " .. title, items = citation_items(repo, cites) })
end

-- -------------------------------------------------------------------- ask

local function detach_watchers(a)
  a.watching = false
  if a.on_key_ns then
    vim.on_key(nil, a.on_key_ns)
    a.on_key_ns = nil
  end
end

-- Cancels the streaming ask (if any). Its callback still reports the end.
function M.cancel()
  local a = state.ask
  if a and not a.done and state.client then
    a.canceled = true
    state.client:cancel(a.id)
    detach_watchers(a)
    return true
  end
  return false
end

function M.close_answer()
  M.cancel()
  local a = state.ask or state.last
  if a and a.win and vim.api.nvim_win_is_valid(a.win) then vim.api.nvim_win_close(a.win, true) end
end

-- Watches the asking buffer and the keyboard while an ask streams.
local function watch(a)
  a.watching = true
  if vim.api.nvim_buf_is_valid(a.origin) then
    vim.api.nvim_buf_attach(a.origin, false, {
      on_lines = function()
        if not a.watching then return true end -- detach
        vim.schedule(function()
          if state.ask == a then M.cancel() end
        end)
        return true
      end,
    })
  end
  local ctrl_c = vim.api.nvim_replace_termcodes("<C-c>", true, false, true)
  a.on_key_ns = vim.api.nvim_create_namespace("kvasir.ask." .. a.id)
  vim.on_key(function(key)
    if key == ctrl_c then vim.schedule(function() if state.ask == a then M.cancel() end end) end
  end, a.on_key_ns)
end

-- Asks question (the selection, if given, is sent with it). opts: range
-- {line1, line2}, buf, max_tokens, on_done(ask) for tests.
function M.ask(question, opts)
  opts = opts or {}
  if not question or question:match("^%s*$") then
    notify("nothing to ask", vim.log.levels.WARN)
    return
  end
  local c = client()
  if not c then return end
  M.cancel()
  local origin = opts.buf or vim.api.nvim_get_current_buf()
  local file = vim.api.nvim_buf_get_name(origin)
  local repo = repo_root(file)
  local q = question
  if opts.range then
    local l1, l2 = opts.range[1], opts.range[2]
    local lines = vim.api.nvim_buf_get_lines(origin, l1 - 1, l2, false)
    local rel = repo and file:sub(#repo + 2) or vim.fn.fnamemodify(file, ":~:.")
    q = ("%s\n\nAbout %s:%d-%d:\n```%s\n%s\n```"):format(question, rel, l1, l2,
      vim.api.nvim_buf_get_option(origin, "filetype"), table.concat(lines, "\n"))
  end
  local buf, win = open_float(question:gsub("\n.*", ""))
  local params = { question = q, max_tokens = opts.max_tokens or config.max_tokens }
  if file ~= "" then params.file = file end
  if repo then params.repo = repo end
  -- one conversation per repository: a follow-up continues it (its turns and KV context in the daemon)
  if state.conversation and state.conversation.repo == repo then params.conversation = state.conversation.id end
  local a = { buf = buf, win = win, origin = origin, text = {}, repo = repo, done = false, params = params }
  a.id = c:request("ask", params, function(err, res)
    a.done = true
    detach_watchers(a)
    if err then
      a.error = err
      if err.code == CANCELED then
        append(buf, "\n\n[canceled]")
      else
        append(buf, "\n\n[error] " .. explain_error(err))
        notify(explain_error(err), vim.log.levels.WARN)
      end
    else
      a.result = res
      if type(res) == "table" and type(res.conversation) == "table" and type(res.conversation.id) == "string" then
        state.conversation = { id = res.conversation.id, repo = repo }
      end
      a.repo = res.repo or a.repo
      set_quickfix(question, a.repo, facts_citations(res.facts, res.citations))
      local tail = {}
      if res.note then tail[#tail + 1] = "(" .. res.note .. ")" end
      if res.retrieval then tail[#tail + 1] = "(" .. res.retrieval .. ")" end
      if #a.text == 0 and #tail == 0 then tail[1] = "(no answer text)" end
      state.answered_by = M.answered_by(res)
      if state.answered_by then tail[#tail + 1] = "answered by " .. state.answered_by end
      if #tail > 0 then append(buf, "\n\n" .. table.concat(tail, "\n")) end
      local n = #(res.citations or {})
      if n > 0 then append(buf, ("\n\n%d citation(s) in the quickfix list (:copen)"):format(n)) end
    end
    if state.ask == a then
      state.ask = nil
      state.last = a
    end
    if opts.on_done then opts.on_done(a) end
  end, function(method, p)
    if method == "ask.context" then
      a.citations = p.citations
      set_quickfix(question, a.repo, facts_citations(a.facts, p.citations))
    elseif method == "ask.facts" then
      a.facts = p.facts
      set_quickfix(question, a.repo, facts_citations(p.facts, a.citations))
    elseif method == "ask.token" and type(p.text) == "string" then
      a.text[#a.text + 1] = p.text
      append(buf, p.text)
    end
  end)
  state.ask = a
  watch(a)
  return a
end

-- ------------------------------------------------------- triage / explain

local function show_result(title, lines, a)
  local buf, win = open_float(title)
  vim.api.nvim_buf_set_lines(buf, 2, -1, false, lines)
  if a then a.buf, a.win = buf, win end
  return buf, win
end

local function explain_lines(r)
  local lines = {}
  if type(r) ~= "table" then return { tostring(r) } end
  if r.tier then
    lines[#lines + 1] = ("tier: %s%s"):format(r.tier, r.tier_kind and (" (" .. r.tier_kind .. ")") or "")
  end
  if r.rule then lines[#lines + 1] = "rule: " .. tostring(r.rule) end
  if r.policy_file then lines[#lines + 1] = "policy: " .. tostring(r.policy_file) end
  if r.offline ~= nil then lines[#lines + 1] = "offline: " .. tostring(r.offline) end
  if type(r.reasons) == "table" and #r.reasons > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "why:"
    for _, x in ipairs(r.reasons) do lines[#lines + 1] = "- " .. tostring(x) end
  end
  if r.text then vim.list_extend(lines, vim.split(tostring(r.text), "\n", { plain = true })) end
  if #lines == 0 then lines = vim.split(vim.inspect(r), "\n", { plain = true }) end
  return lines
end

-- :KvasirExplain — which tier would answer a question here, and why.
function M.explain(question, opts)
  opts = opts or {}
  local c = client()
  if not c then return end
  local file = vim.api.nvim_buf_get_name(opts.buf or 0)
  local repo = repo_root(file)
  local params = { kind = "ask", depth = "fast" }
  if repo then params.repo = repo end
  if question and question ~= "" then params.question = question end
  if file ~= "" and vim.fn.filereadable(file) == 1 then params.file = file end
  local a = { done = false }
  a.id = c:request("policy.explain", params, function(err, r)
    a.done, a.error, a.result = true, err, r
    if err then
      notify(explain_error(err), vim.log.levels.WARN)
    else
      show_result("Why this tier?", explain_lines(r), a)
    end
    if opts.on_done then opts.on_done(a) end
  end)
  return a
end

-- The daemon's log store for a file (a plain name, as logs.* requires).
local function store_name(path)
  local base = vim.fn.fnamemodify(path, ":t"):gsub("[^%w._-]", "_"):sub(1, 48)
  return "editor-" .. (base ~= "" and base or "log")
end

-- A cluster's rate over the triage's time range (logs.triage `bins`) as
-- block characters scaled to the fullest bin, a space for an empty one: what
-- `kvasir logs triage` prints.
local SPARK = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" }
local function sparkline(bins)
  if type(bins) ~= "table" then return "" end
  local mx, out = 0, {}
  for _, b in ipairs(bins) do
    if type(b) == "number" and b > mx then mx = b end
  end
  for i, b in ipairs(bins) do
    if type(b) ~= "number" or b <= 0 then out[i] = " " else out[i] = SPARK[math.floor(b * 7 / mx) + 1] end
  end
  return table.concat(out)
end
M._sparkline = sparkline

-- logs.triage items (the logs module's triage JSON: kind, level, count,
-- template, why, first_file, first_line, bins, ...) to float lines and
-- quickfix items (best first). With `repo` given to logs.triage, each
-- item's `code` sites ({path, line, score}: the literal that prints the
-- template, relative to r.repo) are a line and a quickfix item each.
local function triage_view(r)
  local lines, qf = {}, {}
  local items = type(r) == "table" and r.items or {}
  if #items == 0 then lines[1] = "nothing stands out in this log" end
  for i, it in ipairs(items) do
    local head = ("%d. [%s] %s ×%s  %s"):format(i, tostring(it.kind or "?"), tostring(it.level or ""),
      tostring(it.count or "?"), tostring(it.template or ""))
    lines[#lines + 1] = head
    if type(it.why) == "string" and it.why ~= "" then lines[#lines + 1] = "   " .. it.why end
    local spark = sparkline(it.bins)
    if spark:match("%S") then lines[#lines + 1] = "   " .. spark end
    if type(it.first_file) == "string" then
      qf[#qf + 1] = { filename = it.first_file, lnum = math.max(1, tonumber(it.first_line) or 1), col = 1,
        text = ("[%s] %s %s"):format(tostring(it.kind or "?"), tostring(it.level or ""), tostring(it.template or "")) }
    end
    for _, c in ipairs(type(it.code) == "table" and it.code or {}) do
      if type(c) == "table" and type(c.path) == "string" and c.path ~= "" then
        local l = math.max(1, tonumber(c.line) or 1)
        lines[#lines + 1] = ("   code %s:%d"):format(c.path, l)
        local f = type(r.repo) == "string" and (r.repo .. "/" .. c.path) or c.path
        qf[#qf + 1] = { filename = f, lnum = l, col = 1, text = "[code] " .. tostring(it.template or "") }
      end
    end
  end
  return lines, qf
end
M._triage_view = triage_view

-- :KvasirTriage — ingest a log file into its store, then rank its clusters
-- (new, bursting, rare, error-level); the float lists them, the quickfix
-- list jumps to each cluster's first line.
function M.triage(path, opts)
  opts = opts or {}
  local c = client()
  if not c then return end
  path = (path and path ~= "") and vim.fn.fnamemodify(path, ":p") or vim.api.nvim_buf_get_name(0)
  if path == "" then
    notify("no log file: give a path or open the log", vim.log.levels.WARN)
    return
  end
  local title = "Triage " .. vim.fn.fnamemodify(path, ":~:.")
  local a = { done = false }
  local buf = show_result(title, { "(reading…)" }, a)
  local name = store_name(path)
  local function fail(err)
    a.done, a.error = true, err
    set_lines(buf, { "# " .. title, "", "[error] " .. explain_error(err) })
    if opts.on_done then opts.on_done(a) end
  end
  a.id = c:request("logs.ingest", { paths = { path }, name = name }, function(err, ing)
    if err then return fail(err) end
    -- with the working directory's repository the daemon links each
    -- template to the code that prints it; one it does not know is a params
    -- error, and the triage goes on without the links
    local repo = opts.repo or vim.fn.getcwd()
    local function done(err2, r)
      if err2 then return fail(err2) end
      a.done, a.result = true, r
      local lines, qf = triage_view(r)
      local out = { "# " .. title, "", ("%s records"):format(tostring(ing.records or "?")), "" }
      vim.list_extend(out, lines)
      set_lines(buf, out)
      vim.fn.setqflist({}, " ", { title = "kvasir: " .. title, items = qf })
      if opts.on_done then opts.on_done(a) end
    end
    a.id = c:request("logs.triage", { name = name, limit = 20, repo = repo }, function(err2, r)
      if err2 and not a.canceled then
        a.id = c:request("logs.triage", { name = name, limit = 20 }, done)
        return
      end
      done(err2, r)
    end)
  end, function(method, p)
    if method == "progress" and p.total and p.total > 0 then
      set_lines(buf, { "# " .. title, "", ("(reading %d%%)"):format(math.floor(100 * p.done / p.total)) })
    end
  end)
  return a
end

-- :KvasirIndex — register this repository and index it, with progress.
function M.index(opts)
  opts = opts or {}
  local c = client()
  if not c then return end
  local repo = repo_root(vim.api.nvim_buf_get_name(0))
  if not repo then
    notify("not inside a git repository", vim.log.levels.WARN)
    return
  end
  local a = { done = false }
  a.id = c:request("repo.add", { path = repo, wait = true }, function(err, r)
    a.done, a.error, a.result = true, err, r
    if err then
      notify(explain_error(err), vim.log.levels.WARN)
    else
      local ix = r.index or {}
      notify(("indexed %s: %s files, %s symbols"):format(repo, tostring(ix.files_indexed or "?"), tostring(ix.symbols or "?")))
    end
    if opts.on_done then opts.on_done(a) end
  end, function(method, p)
    if method == "progress" and p.total then
      vim.api.nvim_echo({ { ("kvasir: indexing %d/%d %s"):format(p.done or 0, p.total, p.path or "") } }, false, {})
    end
  end)
  return a
end

-- The tier that answered an ask and its model: "pro (qwen2.5-coder-7b)".
function M.answered_by(res)
  if type(res) ~= "table" then return nil end
  local model = type(res.model) == "string" and res.model ~= "" and (" (" .. res.model .. ")") or ""
  if type(res.tier) == "string" and res.tier ~= "" then return res.tier .. model end
  if type(res.generator) == "string" then return res.generator == "none" and "no model" or res.generator end
  return nil
end

-- For 'statusline': "kvasir · <tier> (<model>)" of the last answer, "" before one.
function M.statusline()
  return state.answered_by and ("kvasir · " .. state.answered_by) or ""
end

function M.status(opts)
  opts = opts or {}
  local c = client()
  if not c then return end
  c:request("status", {}, function(err, r)
    if err then
      notify(explain_error(err), vim.log.levels.WARN)
    else
      local model = r.model or {}
      notify(("daemon %s (pid %s): model %s, %s repo(s), %s job(s) active%s"):format(tostring(r.version), tostring(r.pid),
        tostring(model.state or "?"), tostring(r.repos or 0), tostring(r.jobs and r.jobs.active or 0),
        model.tier and (", last answer: " .. model.tier .. " (" .. tostring(model.model) .. ")") or ""))
    end
    if opts.on_done then opts.on_done(err, r) end
  end)
end

-- :KvasirStart — start the daemon (detached) with `kvasir daemon`.
function M.start_daemon()
  vim.fn.jobstart({ config.kvasir, "daemon" }, {
    detach = true,
    on_exit = function(_, code)
      if code == 0 then notify("daemon started") else notify("`kvasir daemon` exited with " .. code, vim.log.levels.WARN) end
    end,
  })
end

-- ------------------------------------------------------- ghost completion

local function ghost_clear()
  local g = state.ghost
  if not g then return end
  if g.id and state.client and state.client:is_pending(g.id) then state.client:cancel(g.id) end
  if g.buf and vim.api.nvim_buf_is_valid(g.buf) then vim.api.nvim_buf_clear_namespace(g.buf, ns, 0, -1) end
  if g.timer then
    g.timer:stop()
    g.timer:close()
  end
  state.ghost = nil
end
M.ghost_clear = ghost_clear

local function ghost_request(buf)
  local c = client()
  if not c or not vim.api.nvim_buf_is_valid(buf) then return end
  local cur = vim.api.nvim_win_get_cursor(0)
  local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
  local g = state.ghost or {}
  state.ghost = g
  g.buf, g.row, g.col = buf, cur[1], cur[2]
  g.id = c:request("complete", {
    file = vim.api.nvim_buf_get_name(buf), text = text, line = cur[1], col = cur[2], col_unit = "byte",
    max_tokens = config.completion.max_tokens,
  }, function(err, r)
    if state.ghost ~= g or err or type(r) ~= "table" or type(r.text) ~= "string" or r.text == "" then return end
    local now = vim.api.nvim_win_get_cursor(0)
    if now[1] ~= g.row or now[2] ~= g.col or vim.api.nvim_get_current_buf() ~= buf then return end
    g.text = r.text
    local lines = vim.split(r.text, "\n", { plain = true })
    local virt_lines = {}
    for i = 2, #lines do virt_lines[#virt_lines + 1] = { { lines[i], "Comment" } } end
    vim.api.nvim_buf_set_extmark(buf, ns, g.row - 1, g.col, {
      virt_text = { { lines[1], "Comment" } }, virt_text_pos = "overlay",
      virt_lines = #virt_lines > 0 and virt_lines or nil, hl_mode = "combine",
    })
  end)
end

M._ghost_request = ghost_request -- tests: ask now, skipping the debounce

-- Inserts the shown completion at the cursor.
function M.ghost_accept()
  local g = state.ghost
  if not g or not g.text then return false end
  local lines = vim.split(g.text, "\n", { plain = true })
  local buf = g.buf
  state.ghost.id = nil
  ghost_clear()
  vim.api.nvim_buf_set_text(buf, g.row - 1, g.col, g.row - 1, g.col, lines)
  local last = #lines == 1 and g.col + #lines[1] or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { g.row + #lines - 1, last })
  return true
end

local function ghost_schedule(buf)
  ghost_clear()
  local timer = vim.loop.new_timer()
  state.ghost = { buf = buf, timer = timer }
  local g = state.ghost
  timer:start(config.completion.debounce_ms, 0, vim.schedule_wrap(function()
    if state.ghost ~= g then return end
    g.timer = nil
    timer:close()
    if vim.api.nvim_get_mode().mode:sub(1, 1) == "i" then ghost_request(buf) end
  end))
end

local function enable_ghost()
  local group = vim.api.nvim_create_augroup("kvasir_ghost", { clear = true })
  vim.api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, {
    group = group, callback = function(ev) ghost_schedule(ev.buf) end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, { group = group, callback = ghost_clear })
  -- any other keypress cancels the request in flight and hides the text
  local accept = vim.api.nvim_replace_termcodes(config.completion.accept, true, false, true)
  vim.on_key(function(key)
    if state.ghost and key ~= accept then vim.schedule(function()
      if state.ghost and state.ghost.text then ghost_clear() end
    end) end
  end, vim.api.nvim_create_namespace("kvasir.ghost.keys"))
  vim.keymap.set("i", config.completion.accept, function()
    if not M.ghost_accept() then
      return vim.api.nvim_feedkeys(accept, "n", false)
    end
  end, { desc = "kvasir: accept the completion" })
end

-- ------------------------------------------------------------------ setup

function M.setup(opts)
  config = vim.tbl_deep_extend("force", config, opts or {})
  if config.completion.enabled then enable_ghost() end
  return M
end

function M.config() return config end

-- Stops the bridge (tests; VimLeavePre).
function M.shutdown()
  ghost_clear()
  M.cancel()
  if state.client then state.client:stop() end
  state.client = nil
end

return M
