-- ask_spec.lua — headless checks of the kvasir plugin against a real daemon
-- (started by run.mjs; KVASIR_TEST_REPO is its repository). Each case
-- drives the plugin the way a user would (mostly through :commands) and
-- waits with vim.wait, which keeps the event loop running. Exits with
-- :cquit on the first failure, so nvim's status is the verdict.
local kv = require("kvasir")
local repo = os.getenv("KVASIR_TEST_REPO")
local bridge = vim.fn.json_decode(os.getenv("KVASIR_TEST_BRIDGE"))
local failures = 0

local function log(...) io.stdout:write(table.concat(vim.tbl_map(tostring, { ... }), " ") .. "\n") end
local function check(cond, what)
  if not cond then error(what, 2) end
end
local function case(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then log("ok   " .. name) else
    failures = failures + 1
    log("FAIL " .. name .. "\n" .. tostring(err))
  end
end
local function wait_for(ms, cond, what)
  check(vim.wait(ms, cond, 10), "timed out waiting for " .. what)
end
local function buf_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

kv.setup({ cmd = bridge, max_tokens = 6 })

case("facts_citations lists a cited definition once", function()
  local facts = { { symbol = "f", path = "a.c", start_line = 4, end_line = 9, callers = { { path = "b.c", line = 2 } } } }
  local out = kv._facts_citations(facts, { { path = "a.c", start_line = 4, end_line = 9 }, { path = "c.c", start_line = 1, end_line = 3 } })
  check(#out == 3, "expected 3 items, got " .. #out)
  check(out[1].path == "a.c" and out[2].path == "b.c" and out[3].path == "c.c", "order: " .. vim.inspect(out))
end)
vim.cmd("edit " .. repo .. "/src/ledger.c")
local ledger = vim.api.nvim_get_current_buf()

case("status over the bridge", function()
  local got
  kv.status({ on_done = function(err, r) got = { err, r } end })
  wait_for(10000, function() return got end, "status")
  check(got[1] == nil, "status error: " .. vim.inspect(got[1]))
  check(got[2].protocol == 1, "protocol " .. tostring(got[2].protocol))
end)

case(":KvasirIndex registers and indexes the repository", function()
  vim.cmd("KvasirIndex")
  -- the command has no callback: poll the daemon until the repo is indexed
  local done
  local function poll()
    kv.status({ on_done = function(_, r) if r and r.repos == 1 then done = true end end })
  end
  wait_for(15000, function() if not done then poll(); vim.wait(100) end return done end, "the repo to be registered")
  local a = kv.index({ on_done = function() end }) -- idempotent re-add waits for the sync
  wait_for(15000, function() return a.done end, "repo.add")
  check(a.error == nil, vim.inspect(a.error))
  check(a.result.index.files_indexed == 3, vim.inspect(a.result))
end)

case(":KvasirAsk (range) streams into a float and fills the quickfix list", function()
  vim.fn.setqflist({}, "r")
  vim.cmd("3,6KvasirAsk where are the quarterly ledger totals reconciled?")
  local a = kv._state.ask
  check(a ~= nil, "no ask in flight")
  check(a.params.question:find("About src/ledger.c:3-6:", 1, true), "range not sent: " .. a.params.question)
  check(a.params.question:find("int reconcile_ledger(int *totals, int n) {", 1, true), "selected text not sent")
  check(a.win and vim.api.nvim_win_is_valid(a.win), "no floating window")
  check(vim.api.nvim_win_get_config(a.win).relative == "editor", "window is not floating")
  wait_for(15000, function() return a.done end, "the answer")
  check(a.error == nil, "ask failed: " .. vim.inspect(a.error))
  check(#a.text >= 2, "tokens streamed: " .. #a.text)
  check(table.concat(a.text) == a.result.answer, "streamed text differs from the answer")
  local shown = buf_text(a.buf)
  check(shown:find(a.result.answer, 1, true), "float does not show the answer:\n" .. shown)
  -- the tier and the model that answered (the stub generator here)
  check(shown:find("answered by flash (stub)", 1, true), "float does not say who answered:\n" .. shown)
  check(kv.statusline() == "kvasir · flash (stub)", "statusline " .. kv.statusline())
  check(shown:find("src/ledger.c:1-8", 1, true) or shown:find("src/ledger.c:", 1, true), "no citation text in the float")
  local qf = vim.fn.getqflist()
  check(#qf >= 1, "quickfix list is empty")
  local item = qf[1]
  local name = vim.fn.fnamemodify(vim.fn.bufname(item.bufnr), ":p")
  check(name == repo .. "/src/ledger.c", "quickfix file " .. name)
  -- reconcile_ledger is defined on line 4; the cited chunk must cover it
  check(item.lnum >= 1 and item.lnum <= 4, "quickfix line " .. item.lnum)
  check(item.end_lnum == 0 or item.end_lnum >= 4, "quickfix end line " .. tostring(item.end_lnum))
  check(item.text:find("reconcile_ledger", 1, true), "quickfix text " .. item.text)
  check(vim.fn.getqflist({ title = 1 }).title:find("kvasir", 1, true), "quickfix title")
  -- the facts (ask.facts) lead the list: the definition itself, at its line
  check(type(a.facts) == "table" and #a.facts >= 1, "no ask.facts")
  check(item.lnum == a.facts[1].start_line and item.text:find(a.facts[1].symbol, 1, true), "first quickfix item is not the definition: " .. item.text)
  -- :cfirst jumps to the cited file and line
  vim.cmd("cfirst")
  check(vim.api.nvim_buf_get_name(0) == repo .. "/src/ledger.c", "cfirst opened " .. vim.api.nvim_buf_get_name(0))
  check(vim.api.nvim_win_get_cursor(0)[1] == item.lnum, "cfirst line")
  kv.close_answer()
end)

case("editing the asking buffer cancels the stream ($/cancel)", function()
  vim.api.nvim_set_current_buf(ledger)
  local t0 = vim.loop.hrtime()
  local a = kv.ask("ledger totals", { max_tokens = 4000 })
  wait_for(10000, function() return #a.text >= 1 end, "the first token")
  vim.api.nvim_buf_set_lines(ledger, 0, 0, false, { "/* edited */" })
  wait_for(5000, function() return a.done end, "the canceled answer")
  local ms = (vim.loop.hrtime() - t0) / 1e6
  check(a.error and a.error.code == -7, "expected ECANCELED, got " .. vim.inspect(a.error))
  check(ms < 4000, ("took %.0f ms (4000 tokens would take 80 s)"):format(ms))
  check(buf_text(a.buf):find("[canceled]", 1, true), "float does not say canceled")
  vim.api.nvim_buf_set_lines(ledger, 0, 1, false, {})
  kv.close_answer()
end)

case(":KvasirCancel cancels too", function()
  local a = kv.ask("ledger totals", { max_tokens = 4000 })
  wait_for(10000, function() return #a.text >= 1 end, "the first token")
  vim.cmd("KvasirCancel")
  wait_for(5000, function() return a.done end, "the canceled answer")
  check(a.error and a.error.code == -7, vim.inspect(a.error))
  kv.close_answer()
end)

case(":KvasirExplain shows the tier and the reasons", function()
  vim.cmd("KvasirExplain why is this slow?")
  wait_for(10000, function() return vim.api.nvim_win_get_config(0) and #vim.api.nvim_list_wins() > 1 end, "the float")
  local found
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    local t = buf_text(vim.api.nvim_win_get_buf(w))
    if t:find("tier: ", 1, true) then found = t end
  end
  check(found, "no window shows the tier")
  check(found:find("why:", 1, true), "no reasons:\n" .. found)
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(w).relative ~= "" then vim.api.nvim_win_close(w, true) end
  end
end)

case("triage view: the logs module's fields (first_file, first_line, bins) and the sparkline", function()
  check(kv._sparkline({ 0, 0, 3 }) == "  █", "spark " .. kv._sparkline({ 0, 0, 3 }))
  check(kv._sparkline({ 1, 2, 4, 8, 0 }) == "▁▂▄█ ", "spark " .. kv._sparkline({ 1, 2, 4, 8, 0 }))
  check(kv._sparkline(nil) == "", "spark of nil")
  local lines, qf = kv._triage_view({ items = {
    { kind = "new", level = "ERROR", count = 3, template = "db <*> refused", why = "rare",
      first_file = "/l/app.log", first_line = 51, bins = { 0, 0, 3 } },
    { kind = "burst", level = "INFO", count = 50, template = "x", why = "", first_file = "/l/app.log",
      first_line = 0, bins = { 0, 0, 0 } },
  } })
  check(vim.deep_equal(lines, { "1. [new] ERROR ×3  db <*> refused", "   rare", "     █", "2. [burst] INFO ×50  x" }),
    vim.inspect(lines))
  check(#qf == 2 and qf[1].filename == "/l/app.log" and qf[1].lnum == 51 and qf[2].lnum == 1, vim.inspect(qf))
  -- code links (logs.triage with repo): a line and a quickfix item each, under the repository
  lines, qf = kv._triage_view({ repo = "/r", items = {
    { kind = "new", level = "DEBUG", count = 4, template = "conn=<*> pid=<*>", first_file = "/l/d.log", first_line = 2,
      code = { { path = "daemon/server.c", line = 567, score = 0.76 }, { path = 7 } } },
  } })
  check(vim.deep_equal(lines, { "1. [new] DEBUG ×4  conn=<*> pid=<*>", "   code daemon/server.c:567" }), vim.inspect(lines))
  check(#qf == 2 and qf[2].filename == "/r/daemon/server.c" and qf[2].lnum == 567, vim.inspect(qf))
end)

case(":KvasirTriage ranks the log's clusters and sends the anomaly to quickfix", function()
  local log_file = os.getenv("KVASIR_TEST_LOG")
  vim.fn.setqflist({}, "r")
  vim.cmd("KvasirTriage " .. log_file)
  wait_for(15000, function()
    local t = vim.fn.getqflist({ title = 1 }).title
    return t:find("Triage", 1, true) ~= nil
  end, "the triage")
  local qf = vim.fn.getqflist()
  check(#qf == 2, "clusters: " .. #qf)
  -- the 3 ERROR lines start at line 51 and must rank first
  check(vim.fn.fnamemodify(vim.fn.bufname(qf[1].bufnr), ":p") == log_file, "file " .. vim.fn.bufname(qf[1].bufnr))
  check(qf[1].lnum == 51, "line " .. qf[1].lnum)
  check(qf[1].text:find("ERROR db connection to <*> refused after <*> retries", 1, true), qf[1].text)
  local shown
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    local t = buf_text(vim.api.nvim_win_get_buf(w))
    if t:find("53 records", 1, true) then shown = t end
  end
  check(shown and shown:find("1. [", 1, true), "float: " .. tostring(shown))
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(w).relative ~= "" then vim.api.nvim_win_close(w, true) end
  end
end)

case("daemon down: a clear message with the way out", function()
  kv.shutdown()
  kv.setup({ env = { XDG_RUNTIME_DIR = repo .. "/no-daemon-here" } })
  local a = kv.ask("anything")
  wait_for(10000, function() return a.done end, "the failure")
  check(a.error and a.error.message:find("not running", 1, true), vim.inspect(a.error))
  check(buf_text(a.buf):find(":KvasirStart", 1, true), "no hint in the float:\n" .. buf_text(a.buf))
  kv.close_answer()
  kv.shutdown()
end)

if failures > 0 then
  log(failures .. " failure(s)")
  vim.cmd("cquit 1")
else
  log("all passed")
  vim.cmd("qall!")
end
