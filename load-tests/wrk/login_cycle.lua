-- POST /api/v1/auth/login cycling through the accounts in EMAILS_FILE (one
-- email per line), all with the password PASSWORD: logins spread over many
-- accounts, as real traffic is (one account allows only a few attempts in
-- flight at once). Env: EMAILS_FILE, PASSWORD. Run the gateway with
-- PORTCULLIS_RATE_LIMIT=off.
local emails = {}
for line in io.lines(os.getenv("EMAILS_FILE")) do
  if #line > 0 then emails[#emails + 1] = line end
end
local password = os.getenv("PASSWORD")
local thread_count = 0
local next_index = 1

function setup(thread)
  thread_count = thread_count + 1
  thread:set("start", thread_count)
end

function init(args)
  -- Threads start at different points of the list.
  next_index = ((start or 1) * 7919) % #emails + 1
end

function request()
  local email = emails[next_index]
  next_index = next_index % #emails + 1
  local body = string.format('{"email":"%s","password":"%s"}', email, password)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
