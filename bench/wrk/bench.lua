-- One wrk script for every row: `wrk ... -s bench.lua URL -- MODE FILE`.
--   get     FILE lines "token<TAB>path"            (token "-" for none)
--   post    FILE lines "token<TAB>path<TAB>body"   (JSON body)
--   refresh FILE lines "refresh_token": each token is presented once; the new
--           refresh token of every answer goes back into the thread's pool, so
--           each chain rotates exactly like a client would (no reuse, no grace).
--           Run it as refresh.lua, which adds the response() that reads the answers:
--           without a response() wrk does not keep bodies, which costs it less CPU.
-- Every thread takes its own slice of FILE (args: MODE FILE THREADS [PATH]).
-- done() prints one BENCH_RESULT line of JSON for the runner.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local mode, items, next_item = nil, {}, 1
pool = {}  -- global: refresh.lua's response() refills it
lost = 0   -- global: done() reads it with thread:get

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do table.insert(fields, field) end
  return fields
end

function init(args)
  mode = args[1]
  local n = tonumber(args[3] or "1")
  local lines = {}
  for line in io.lines(args[2]) do table.insert(lines, line) end
  if #lines < n then n = 1; tid = 0 end  -- too few to share: every thread takes them all
  for index, line in ipairs(lines) do
    if (index - 1) % n == tid then
      local f = split(line)
      local headers = {}
      if mode ~= "refresh" and f[1] ~= "-" then headers["Authorization"] = "Bearer " .. f[1] end
      if mode == "get" then
        table.insert(items, wrk.format("GET", f[2], headers))
      elseif mode == "post" then
        headers["Content-Type"] = "application/json"
        table.insert(items, wrk.format("POST", f[2], headers, f[3]))
      else
        table.insert(pool, f[1])
      end
    end
  end
  if mode == "refresh" then
    wrk.method = "POST"
    wrk.path = args[4]
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if mode == "refresh" then
    local token = table.remove(pool)
    if token == nil then
      lost = lost + 1
      token = "pool-empty"
    end
    return wrk.format(nil, nil, nil, '{"refresh_token": "' .. token .. '"}')
  end
  local item = items[next_item]
  next_item = next_item % #items + 1
  return item
end

function done(summary, latency, requests)
  local e = summary.errors
  local empty = 0
  for _, thread in ipairs(threads) do empty = empty + (thread:get("lost") or 0) end
  io.write(string.format(
    '\nBENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "pool_empty": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, empty))
end
