-- ghost_spec.lua — ghost-text completion and a real-model ask, headless,
-- against a daemon running the real engine (run.mjs ghost_spec.lua --model
-- GGUF; slow). The reference for the ghost text is the daemon's own
-- `complete` answer to the same request, fetched separately over the bridge
-- (the engine is deterministic for a given prompt).
local kv = require("kvasir")
local rpc = require("kvasir.rpc")
local repo = os.getenv("KVASIR_TEST_REPO")
local bridge = vim.fn.json_decode(os.getenv("KVASIR_TEST_BRIDGE"))
local failures = 0
local function log(...) io.stdout:write(table.concat(vim.tbl_map(tostring, { ... }), " ") .. "\n") end
local function check(cond, what) if not cond then error(what, 2) end end
local function case(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then log("ok   " .. name) else failures = failures + 1; log("FAIL " .. name .. "\n" .. tostring(err)) end
end
local function wait_for(ms, cond, what) check(vim.wait(ms, cond, 20), "timed out waiting for " .. what) end

kv.setup({ cmd = bridge, max_tokens = 12, completion = { enabled = true, debounce_ms = 50, max_tokens = 12 } })
vim.cmd("edit " .. repo .. "/src/util.c")
local buf = vim.api.nvim_get_current_buf()
vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "int add_one(int x) { return x + 1; }", "int add_two(int x) { return " })
vim.api.nvim_win_set_cursor(0, { 2, 28 })
-- normal mode clamps the cursor to the last character (col 27); ghost text
-- is anchored wherever the cursor really is
local col = vim.api.nvim_win_get_cursor(0)[2]
local line2 = "int add_two(int x) { return "

case("ghost text shows the daemon's completion and <accept> inserts it", function()
  -- the reference: the same request straight over a second bridge
  local ref
  local c = assert(rpc.start({ cmd = bridge }))
  c:request("complete", {
    file = vim.api.nvim_buf_get_name(buf), text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n"),
    line = 2, col = col, max_tokens = 12,
  }, function(err, r) ref = { err, r } end)
  wait_for(60000, function() return ref end, "the reference completion")
  c:stop()
  check(ref[1] == nil and ref[2].text ~= "", "reference: " .. vim.inspect(ref))
  kv._ghost_request(buf)
  local ns = vim.api.nvim_create_namespace("kvasir")
  local marks
  wait_for(60000, function()
    marks = vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
    return #marks > 0
  end, "the ghost text")
  local m = marks[1]
  check(m[2] == 1 and m[3] == col, ("ghost at %d:%d, cursor at 1:%d"):format(m[2], m[3], col))
  local first = vim.split(ref[2].text, "\n", { plain = true })[1]
  check(m[4].virt_text[1][1] == first, ("ghost %q, reference %q"):format(m[4].virt_text[1][1], first))
  -- the buffer is untouched until accepted
  check(vim.api.nvim_buf_get_lines(buf, 1, 2, false)[1] == "int add_two(int x) { return ", "buffer edited before accept")
  check(kv.ghost_accept(), "accept")
  local now = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
  local want = "int add_one(int x) { return x + 1; }\n" .. line2:sub(1, col) .. ref[2].text .. line2:sub(col + 1)
  check(now == want, "after accept:\n" .. now .. "\nwanted:\n" .. want)
  check(#vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, {}) == 0, "ghost not cleared")
end)

case("a real-model ask streams text and cites src/ledger.c", function()
  local a = kv.index({})
  wait_for(30000, function() return a.done end, "index")
  vim.cmd("edit " .. repo .. "/src/ledger.c")
  vim.fn.setqflist({}, "r")
  local q = kv.ask("where are the quarterly ledger totals reconciled?")
  local ok = vim.wait(120000, function() return q.done end, 20)
  local cl = kv._state.client
  check(ok, ("no answer: %d tokens, context=%s, pending=%s, closed=%s"):format(#q.text, tostring(q.citations ~= nil),
    vim.inspect(vim.tbl_keys(cl and cl.pending or {})), tostring(cl and cl.closed)))
  check(q.error == nil, vim.inspect(q.error))
  check(q.result.generator == "engine", "generator " .. tostring(q.result.generator))
  check(#table.concat(q.text) > 0 and table.concat(q.text) == q.result.answer, "streamed text")
  local qf = vim.fn.getqflist()
  check(#qf >= 1 and vim.fn.bufname(qf[1].bufnr):find("src/ledger.c", 1, true), vim.inspect(qf))
  kv.close_answer()
end)

kv.shutdown()
if failures > 0 then vim.cmd("cquit 1") else log("all passed"); vim.cmd("qall!") end
