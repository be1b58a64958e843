// The gateway's JSON API as the pages call it: the same routes as any
// client. The tokens live in this module's memory only (never in storage):
// a reload signs out. The access token is refreshed a minute before it
// expires; signing out revokes the session.

const signedIn = { token: null, refreshToken: null, timer: null, base: "/api/v1/auth" };
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `The gateway answered ${status}.`);
    this.status = status;
    this.code = (body && body.code) || "";
    this.fields = (body && body.fields) || {};
  }
}

/// The auth routes of a project other than `default`, or of `default`.
export function useProject(project) {
  signedIn.base = project && project !== "default"
    ? `/api/v1/projects/${encodeURIComponent(project)}/auth`
    : "/api/v1/auth";
}

/// `fn(signedInNow)` on every sign-in and sign-out.
export function onSessionChange(fn) {
  listeners.add(fn);
}

export function isSignedIn() {
  return signedIn.token !== null;
}

async function call(method, url, body, bearer) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/// A call as the signed-in user. A 401 (the session ended elsewhere)
/// signs out here too.
export async function authed(method, path, body) {
  if (!signedIn.token) throw new ApiError(401, { error: "Not signed in.", code: "invalid_token" });
  try {
    return await call(method, path, body, signedIn.token);
  } catch (error) {
    if (error.status === 401) forget();
    throw error;
  }
}

/// A route of the signed-in user's project (`/me`, `/sessions`, ...).
export function own(method, path, body) {
  return authed(method, signedIn.base + path, body);
}

/// Keeps a token response: the session starts, and its refresh is timed.
function keep(grant) {
  signedIn.token = grant.token;
  signedIn.refreshToken = grant.refresh_token;
  clearTimeout(signedIn.timer);
  const seconds = Math.max(5, (grant.expires_in || 60) - 60);
  signedIn.timer = setTimeout(refresh, seconds * 1000);
}

async function refresh() {
  try {
    keep(await call("POST", `${signedIn.base}/refresh`, { refresh_token: signedIn.refreshToken }));
  } catch {
    forget();
  }
}

function forget() {
  const was = signedIn.token !== null;
  clearTimeout(signedIn.timer);
  signedIn.token = null;
  signedIn.refreshToken = null;
  if (was) listeners.forEach((fn) => fn(false));
}

/// A login's answer: signed in, or `{challenge}` when a second factor is due.
function started(answer) {
  if (answer && answer.two_factor_required) return { challenge: answer.challenge_token };
  keep(answer);
  listeners.forEach((fn) => fn(true));
  return { user: answer.user };
}

export async function login(email, password) {
  return started(await call("POST", `${signedIn.base}/login`, { email, password }));
}

export async function secondFactor(challenge, code) {
  return started(await call("POST", `${signedIn.base}/2fa/verify`, { challenge_token: challenge, code }));
}

export async function sendCode(email) {
  return call("POST", `${signedIn.base}/otp/send`, { email, purpose: "login" });
}

export async function codeLogin(email, code) {
  return started(await call("POST", `${signedIn.base}/otp/login`, { email, code }));
}

export async function passkeyOptions(email) {
  return call("POST", `${signedIn.base}/passkey/login/options`, email ? { email } : {});
}

export async function passkeyLogin(challengeId, credential) {
  return started(await call("POST", `${signedIn.base}/passkey/login/verify`, { challenge_id: challengeId, credential }));
}

/// Revokes the session on the gateway, then forgets it here.
export async function logout() {
  try {
    if (signedIn.token) await call("POST", `${signedIn.base}/logout`, undefined, signedIn.token);
  } finally {
    forget();
  }
}
