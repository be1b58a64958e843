-- POST /api/v1/auth/login with one account's credentials: a password-hashing flood.
-- Env: EMAIL, PASSWORD. Run the gateway with PORTCULLIS_RATE_LIMIT=off.
wrk.method = "POST"
wrk.body = string.format('{"email":"%s","password":"%s"}', os.getenv("EMAIL"), os.getenv("PASSWORD"))
wrk.headers["Content-Type"] = "application/json"
