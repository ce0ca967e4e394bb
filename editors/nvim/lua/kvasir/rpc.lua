-- kvasir/rpc.lua — a msgpack-rpc client of kvasird through `kvasir bridge`
-- (a child process relaying plain msgpack-rpc on its stdio to the daemon's
-- encrypted socket). Neovim >= 0.7: vim.loop pipes and vim.mpack.
--
-- Invariants: nothing here blocks — reads arrive in libuv callbacks, are
-- decoded incrementally (a message split across reads is kept in the
-- unpacker) and dispatched with vim.schedule; every request gets exactly one
-- callback (result, error, or the bridge's exit); cancel() sends
-- `$/cancel {id}` once and still waits for the daemon's answer.
local M = {}
local uv = vim.loop

local Client = {}
Client.__index = Client

-- Params as a msgpack map even when empty (an empty Lua table packs as []).
local function as_map(t)
  if t == nil or next(t) == nil then return vim.empty_dict() end
  return t
end

-- Converts vim.NIL (msgpack nil) to Lua nil, recursively.
local function denil(v)
  if v == vim.NIL then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = denil(x) end
  end
  return v
end
M.denil = denil

-- Starts the bridge. opts: cmd (argv list), env (map, optional),
-- on_notify(method, params), on_exit(code, stderr_text, had_pending).
function M.start(opts)
  local self = setmetatable({
    pending = {}, next_id = 0, closed = false, stderr = {},
    on_notify = opts.on_notify, on_exit = opts.on_exit,
  }, Client)
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  self.stdin = stdin
  local env
  if opts.env then
    env = {}
    for k, v in pairs(vim.fn.environ()) do if opts.env[k] == nil then env[#env + 1] = k .. "=" .. v end end
    for k, v in pairs(opts.env) do env[#env + 1] = k .. "=" .. v end
  end
  local argv = opts.cmd
  local handle, pid_or_err = uv.spawn(argv[1], {
    args = vim.list_slice(argv, 2), stdio = { stdin, stdout, stderr }, env = env,
  }, function(code, signal)
    vim.schedule(function() self:_exited(code, signal) end)
  end)
  if not handle then
    stdin:close(); stdout:close(); stderr:close()
    return nil, ("cannot start %s: %s"):format(argv[1], tostring(pid_or_err))
  end
  self.handle = handle
  local unpack = vim.mpack.Unpacker()
  stdout:read_start(function(err, chunk)
    if err or not chunk then
      stdout:close()
      return
    end
    local pos, n = 1, #chunk
    while pos <= n do
      local ok, obj, npos = pcall(unpack, chunk, pos)
      if not ok then
        vim.schedule(function() self:_fail("undecodable message from the bridge: " .. tostring(obj)) end)
        return
      end
      pos = npos
      if obj == nil then break end
      vim.schedule(function() self:_dispatch(obj) end)
    end
  end)
  stderr:read_start(function(err, chunk)
    if err or not chunk then
      stderr:close()
      return
    end
    self.stderr[#self.stderr + 1] = chunk
  end)
  return self
end

function Client:_dispatch(msg)
  if type(msg) ~= "table" then return end
  if msg[1] == 1 then
    local cb = self.pending[msg[2]]
    if not cb then return end
    self.pending[msg[2]] = nil
    local err = denil(msg[3])
    if err ~= nil then
      if type(err) ~= "table" then err = { code = -1, message = tostring(err) } end
      if err[1] ~= nil and err.message == nil then err = { code = err[1], message = tostring(err[2]) } end
      cb.fn(err, nil)
    else
      cb.fn(nil, denil(msg[4]))
    end
  elseif msg[1] == 2 then
    local params = denil(msg[3])
    local id = type(params) == "table" and params.id or nil
    local cb = id and self.pending[id]
    if cb and cb.on_notify then
      local ok, e = pcall(cb.on_notify, msg[2], params)
      if not ok then vim.notify("kvasir: " .. tostring(e), vim.log.levels.ERROR) end
    end
    if self.on_notify then pcall(self.on_notify, msg[2], params) end
  end
end

function Client:_send(msg)
  if self.closed then return false end
  self.stdin:write(vim.mpack.encode(msg))
  return true
end

-- Calls method; fn(err, result) runs on the main loop. err = {code, message}.
-- on_notify(method, params) receives this call's notifications. Returns the id.
function Client:request(method, params, fn, on_notify)
  self.next_id = self.next_id + 1
  local id = self.next_id
  if self.closed then
    vim.schedule(function() fn({ code = -1, message = "the bridge is not running" }, nil) end)
    return id
  end
  self.pending[id] = { fn = fn, on_notify = on_notify, method = method }
  self:_send({ 0, id, method, as_map(params) })
  return id
end

function Client:notify(method, params)
  return self:_send({ 2, method, as_map(params) })
end

-- Asks the daemon to stop request id; its callback still runs (ECANCELED).
function Client:cancel(id)
  local p = self.pending[id]
  if not p or p.canceled then return false end
  p.canceled = true
  return self:notify("$/cancel", { id = id })
end

function Client:is_pending(id)
  return self.pending[id] ~= nil
end

function Client:_fail(why)
  if self.closed then return end
  self.closed = true
  local pending = self.pending
  self.pending = {}
  for _, p in pairs(pending) do p.fn({ code = -1, message = why }, nil) end
  if self.handle and not self.handle:is_closing() then self.handle:kill("sigterm") end
end

function Client:_exited(code, signal)
  local text = table.concat(self.stderr):gsub("%s+$", "")
  local had_pending = next(self.pending) ~= nil
  self:_fail(text ~= "" and text or ("the bridge exited (status %d)"):format(code))
  if self.stdin and not self.stdin:is_closing() then self.stdin:close() end
  if self.handle and not self.handle:is_closing() then self.handle:close() end
  -- had_pending: the requests' callbacks already reported the failure
  if self.on_exit then self.on_exit(code, text, had_pending) end
end

-- Closes stdin (the bridge then closes the session cleanly and exits).
function Client:stop()
  if self.stdin and not self.stdin:is_closing() then self.stdin:shutdown(function() self.stdin:close() end) end
end

return M
