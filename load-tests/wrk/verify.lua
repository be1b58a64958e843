-- GET /api/v1/verify as a forward-auth proxy would, with the client's credential.
-- Env: TOKEN (sent as Authorization: Bearer) or API_KEY (sent as X-API-Key).
-- wrk -t2 -c50 -d10s -s load-tests/wrk/verify.lua http://127.0.0.1:8080/api/v1/verify
local token = os.getenv("TOKEN")
local api_key = os.getenv("API_KEY")
if api_key then
  wrk.headers["X-API-Key"] = api_key
elseif token then
  wrk.headers["Authorization"] = "Bearer " .. token
end
