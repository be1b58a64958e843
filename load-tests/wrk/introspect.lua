-- POST /api/v1/introspect with one token, as a service checking each request would.
-- Env: TOKEN (the token to introspect), INTROSPECT_KEY (an API key with scope introspect).
-- wrk -t2 -c50 -d10s -s load-tests/wrk/introspect.lua http://127.0.0.1:8080/api/v1/introspect
wrk.method = "POST"
wrk.body = "token=" .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local key = os.getenv("INTROSPECT_KEY")
if key then
  wrk.headers["Authorization"] = "Bearer " .. key
end
