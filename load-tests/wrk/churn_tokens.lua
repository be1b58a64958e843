-- GET /api/v1/verify with a token never sent before on (almost) every
-- request, for the bounded-memory churn (load-tests/churn). One request in
-- VALID_EVERY presents a real access token from VALID_FILE (cycling: there
-- are more than the cache holds, so they evict each other); the others are
-- forged and distinct: JWTs under the gateway's real header and key id (each
-- costs a signature check) and well-formed API keys (each costs a store
-- lookup). Env: VALID_FILE, VALID_EVERY, JWT_HEADER, OFFSET (makes the
-- forged tokens of one run new to the next), THREADS.
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  valid, sent = {}, 0
  every = tonumber(os.getenv("VALID_EVERY"))
  header = os.getenv("JWT_HEADER")
  offset = tonumber(os.getenv("OFFSET"))
  local line_number = 0
  threads = tonumber(os.getenv("THREADS"))
  for line in io.lines(os.getenv("VALID_FILE")) do
    if line_number % threads == id and #line > 0 then valid[#valid + 1] = line end
    line_number = line_number + 1
  end
end

function request()
  sent = sent + 1
  local token
  if sent % every == 0 and #valid > 0 then
    -- Runs go on where the last one stopped (OFFSET counts every thread's requests).
    token = valid[(math.floor(offset / (every * threads)) + sent / every) % #valid + 1]
  elseif sent % 2 == 0 then
    -- Forged: a payload and signature of the right shape, never signed.
    token = string.format("%s.eyJzdWIiOiJmb3JnZWQt%02d%012d.%086d", header, id, offset + sent, offset + sent)
  else
    -- An API key of the right length that was never issued.
    token = string.format("pk_live_%02d%041d", id, offset + sent)
  end
  return wrk.format("GET", "/api/v1/verify", { ["Authorization"] = "Bearer " .. token })
end
