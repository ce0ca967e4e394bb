-- plugin/kvasir.lua — the :Kvasir* commands (Neovim >= 0.7). Loading is
-- cheap: the bridge starts on the first command. Configure with
-- require("kvasir").setup({ ... }) (see doc/kvasir.txt).
if vim.g.loaded_kvasir or vim.fn.has("nvim-0.7") == 0 then return end
vim.g.loaded_kvasir = true

local function k() return require("kvasir") end
local cmd = vim.api.nvim_create_user_command

cmd("KvasirAsk", function(o)
  local range = o.range > 0 and { o.line1, o.line2 } or nil
  local function go(q) if q then k().ask(q, { range = range }) end end
  if o.args ~= "" then go(o.args) else vim.ui.input({ prompt = "kvasir: ask> " }, go) end
end, { nargs = "*", range = true, desc = "kvasir: ask about the repository (range: about these lines)" })
cmd("KvasirTriage", function(o) k().triage(o.args) end, { nargs = "?", complete = "file", desc = "kvasir: triage a log file" })
cmd("KvasirExplain", function(o) k().explain(o.args) end, { nargs = "*", desc = "kvasir: which tier would answer, and why" })
cmd("KvasirIndex", function() k().index() end, { desc = "kvasir: register and index this repository" })
cmd("KvasirStatus", function() k().status() end, { desc = "kvasir: daemon status" })
cmd("KvasirCancel", function() k().cancel() end, { desc = "kvasir: cancel the streaming answer" })
cmd("KvasirStart", function() k().start_daemon() end, { desc = "kvasir: start the daemon" })

vim.api.nvim_create_autocmd("VimLeavePre", {
  group = vim.api.nvim_create_augroup("kvasir_exit", { clear = true }),
  callback = function() if package.loaded["kvasir"] then require("kvasir").shutdown() end end,
})
