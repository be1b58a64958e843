-- Mints access tokens for the bounded-memory churn (load-tests/churn):
-- POST /api/v1/auth/refresh, each thread walking its own chain (use
-- -t N -c N), each request from a new client address through a trusted
-- proxy, every new access token appended to VALID_DIR/valid-<thread>.
-- Env: REFRESH_FILE (one refresh token per line, one per thread),
-- VALID_DIR, OFFSET (addresses new across runs), THREADS.
local thread_count = 0
local chains = {}

function setup(thread)
  if #chains == 0 then
    for line in io.lines(os.getenv("REFRESH_FILE")) do
      if #line > 0 then chains[#chains + 1] = line end
    end
  end
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  thread:set("token", chains[thread_count])
end

function init(args)
  sent = 0
  threads = tonumber(os.getenv("THREADS"))
  offset = tonumber(os.getenv("OFFSET"))
  out = io.open(string.format("%s/valid-%d", os.getenv("VALID_DIR"), id), "a")
end

function request()
  local n = offset + sent * threads + id
  sent = sent + 1
  local address = string.format("10.%d.%d.%d", 64 + math.floor(n / 65536) % 64, math.floor(n / 256) % 256, n % 256)
  local body = string.format('{"refresh_token":"%s"}', token)
  local headers = { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = address }
  return wrk.format("POST", "/api/v1/auth/refresh", headers, body)
end

function response(status, headers, body)
  local next_token = body:match('"refresh_token":"([^"]+)"')
  local access = body:match('"token":"([^"]+)"')
  if status == 200 and next_token and access then
    token = next_token
    out:write(access, "\n")
    out:flush()
  end
end
