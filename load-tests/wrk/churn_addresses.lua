-- Every rate-limited route from a new client address each time, through a
-- trusted proxy (X-Forwarded-For), for the bounded-memory churn
-- (load-tests/churn). Bodies are `{}`: the per-IP budget is spent before
-- validation, so each request adds a key to a limiter and costs no hash.
-- Env: ROUTES (comma-separated, each a path or METHOD:path; POST by
-- default), TOKEN (Bearer, for the signed-in
-- ones), OFFSET (addresses new across runs), THREADS.
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  routes, sent = {}, 0
  for route in string.gmatch(os.getenv("ROUTES"), "[^,]+") do
    local method, path = route:match("^(%u+):(.+)$")
    routes[#routes + 1] = { method or "POST", path or route }
  end
  threads = tonumber(os.getenv("THREADS"))
  offset = tonumber(os.getenv("OFFSET"))
  token = os.getenv("TOKEN")
end

function request()
  -- Each address walks every route once before the next address.
  local route = routes[sent % #routes + 1]
  local n = offset + math.floor(sent / #routes) * threads + id
  sent = sent + 1
  local address = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = address,
    ["Authorization"] = "Bearer " .. token,
  }
  return wrk.format(route[1], route[2], headers, "{}")
end
