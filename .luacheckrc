-- luacheck's configuration for the Lua scripts Redis runs
-- (billing/redisstore/lua/; .ci/run checks them with `luacheck billing/redisstore/lua`).

-- Redis runs scripts in Lua 5.1 in a sandbox: the base functions it keeps, its
-- libraries, and the script's API and arguments. Globals cannot be created.
stds.redis = {
  read_globals = {
    "redis", "KEYS", "ARGV",
    "cjson", "cmsgpack", "bit", "struct",
    "gcinfo", "newproxy",
  },
}
std = "lua51+redis"
-- Lua 5.1 globals the sandbox leaves out. Redis 7.4 and later keep os.clock, which
-- older versions do not have: os is left out too.
not_globals = {"io", "os", "print", "dofile", "loadfile", "require", "module", "package", "debug"}

-- A script whose first line is "-- luacheck: std +prelude" is joined after
-- prelude.lua when it is loaded (redisstore's newScript), so it sees the prelude's
-- top-level names: std "prelude" makes them read-only globals for it. They are read
-- here from the prelude's top-level declarations (`local function f(…)`,
-- `local a, b = …` at the start of a line), so the list cannot drift; a table
-- (`local T = {`, `local S, S0 = {}, {}`) may have its fields set.
local lua_dir = "billing/redisstore/lua/"
local prelude = {}
local exported = {}
local prelude_file = io.open(lua_dir .. "prelude.lua")
if not prelude_file then error("run luacheck from the repository root: it reads " .. lua_dir .. "prelude.lua") end
for line in prelude_file:lines() do
  local names, rest = line:match("^local function ([%w_]+)()")
  if not names then names, rest = line:match("^local ([%w_, ]-)%s*=%s*(.*)$") end
  if names then
    local table_value = type(rest) == "string" and rest:sub(1, 1) == "{"
    for name in names:gmatch("[%w_]+") do
      prelude[name] = table_value and {read_only = false, other_fields = true} or {}
      exported[#exported + 1] = "211/" .. name -- unused in the prelude itself: used by scripts
    end
  end
end
prelude_file:close()
stds.prelude = {read_globals = prelude}
files[lua_dir .. "prelude.lua"] = {ignore = exported}
