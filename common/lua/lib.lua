-- lib: helpers every queue script starts with (scripts/embed-lua.sh prepends this file
-- to each script, so they share one definition). Redis's clock is the only clock.

-- Now in milliseconds since the epoch, from the Redis server's clock: as a string (to
-- store; converting Lua numbers to strings is costly in Redis) and as a number.
local function clock()
  local t = redis.call('TIME')
  local us = t[2]
  local ms = #us > 3 and string.sub(us, 1, #us - 3) or '0'
  ms = string.rep('0', 3 - #ms) .. ms
  return t[1] .. ms, tonumber(t[1]) * 1000 + tonumber(ms)
end

local function now_ms()
  local _, n = clock()
  return n
end
