-- POST /api/v1/auth/login as a credential-stuffing flood: a new (unknown)
-- email on every request, so every request costs a password hash (the
-- dummy hash that keeps unknown accounts indistinguishable) and none is
-- stopped by the per-account lock. Run the gateway with PORTCULLIS_RATE_LIMIT=off.
local counter = 0
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
end

function request()
  counter = counter + 1
  local body = string.format('{"email":"flood-%d-%d@bench.test","password":"not the password"}', id or 0, counter)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
