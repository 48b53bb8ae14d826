-- POST /refresh chains: bench.lua in refresh mode, plus the response() that
-- takes each answer's new refresh token back into the thread's pool.
dofile("bench/wrk/bench.lua")

function response(status, headers, body)
  local token = body and body:match('"refresh_token":%s*"([^"]+)"')
  if token then table.insert(pool, token) end
end
