-- POST /api/v1/auth/refresh, each connection walking its own chain of
-- refresh tokens (every answer's refresh_token is the next request's).
-- Env: REFRESH_FILE, one refresh token per line, at least one per thread.
-- Use as many threads as connections (-t N -c N): a chain allows one
-- request in flight. Run the gateway with PORTCULLIS_RATE_LIMIT=off.
local tokens = {}
local thread_count = 0

function setup(thread)
  if #tokens == 0 then
    for line in io.lines(os.getenv("REFRESH_FILE")) do
      if #line > 0 then tokens[#tokens + 1] = line end
    end
  end
  thread_count = thread_count + 1
  thread:set("token", tokens[thread_count])
end

function request()
  local body = string.format('{"refresh_token":"%s"}', token)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  local next_token = body:match('"refresh_token":"([^"]+)"')
  if status == 200 and next_token then
    token = next_token
  end
end
