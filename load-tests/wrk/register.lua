-- POST /api/v1/auth/register with a new email on every request (each one a
-- password hash and the uniqueness claims). Env: RUN (a word that makes this
-- run's emails new; default "run"). Run the gateway with PORTCULLIS_RATE_LIMIT=off.
local counter = 0
local thread_count = 0
local run = os.getenv("RUN") or "run"

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

function request()
  counter = counter + 1
  local body = string.format('{"email":"%s-%d-%d@bench.test","password":"correct horse battery","name":"Load"}',
    run, id or 0, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
