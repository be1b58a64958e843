-- GET /api/v1/verify once for each token in TOKENS_FILE (one per line), each
-- wrk thread its share, then the thread stops (wrk itself runs out its -d,
-- so give it time enough; the latencies are of the real checks): with tokens the gateway has not
-- checked before, every request is a first sight (signature, session and
-- user checks). Env: TOKENS_FILE, THREADS (wrk's -t). Use one connection
-- per thread, so the latency is a check's and not a queue's.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local threads = tonumber(os.getenv("THREADS"))
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

local next_index = nil

function request()
  next_index = next_index and next_index + threads or id
  local token = tokens[math.min(next_index, #tokens)]
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token }, nil)
end

function response(status, headers, body)
  if next_index + threads > #tokens then
    wrk.thread:stop()
  end
end
