-- POST /api/v1/introspect cycling through the tokens in TOKENS_FILE (one per
-- line). With more tokens than the gateway's token cache holds, most checks
-- are first sights (a full signature verification).
-- Env: TOKENS_FILE, INTROSPECT_KEY.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local key = os.getenv("INTROSPECT_KEY")
local next_index = 1
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("start", thread_count)
end

function init(args)
  -- Threads start at different points of the list.
  next_index = ((start or 1) * 7919) % #tokens + 1
end

function request()
  local token = tokens[next_index]
  next_index = next_index % #tokens + 1
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Bearer " .. key,
  }
  return wrk.format("POST", nil, headers, "token=" .. token)
end
