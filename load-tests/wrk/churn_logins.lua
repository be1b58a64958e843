-- POST /api/v1/auth/login for a new unknown email each time, each from a
-- new client address (through a trusted proxy), for the bounded-memory churn
-- (load-tests/churn): every request costs the dummy hash and adds a key to
-- the lockout table and to the login limiter. Env: OFFSET, THREADS.
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  sent = 0
  threads = tonumber(os.getenv("THREADS"))
  offset = tonumber(os.getenv("OFFSET"))
end

function request()
  local n = offset + sent * threads + id
  sent = sent + 1
  local address = string.format("10.%d.%d.%d", 128 + math.floor(n / 65536) % 128, math.floor(n / 256) % 256, n % 256)
  local body = string.format('{"email":"nobody-%d@churn.test","password":"not the password"}', n)
  local headers = { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = address }
  return wrk.format("POST", "/api/v1/auth/login", headers, body)
end
