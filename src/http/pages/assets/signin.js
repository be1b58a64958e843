// The sign-in panel both pages open with: password, email code or passkey,
// then the two-factor challenge when the account has 2FA on.

import * as api from "./{{api.js}}";
import { el, field, form, show } from "./{{ui.js}}";

/// Renders into `root`; `done(user)` once signed in.
export function signIn(root, title, done) {
  const body = el("div", { class: "signin-body" });
  const tabs = [
    ["Password", () => passwordForm(body, done)],
    ["Email code", () => codeForm(body, done)],
    ["Passkey", () => passkeyForm(body, done)],
  ];
  const buttons = tabs.map(([label, open], i) => el("button", {
    type: "button", class: "tab", "aria-pressed": i === 0 ? "true" : "false",
    on: { click: (event) => {
      buttons.forEach((b) => b.setAttribute("aria-pressed", "false"));
      event.currentTarget.setAttribute("aria-pressed", "true");
      open();
    } },
  }, label));
  show(root, el("section", { class: "card signin", "aria-labelledby": "signin-title" },
    el("h1", { id: "signin-title" }, title),
    el("div", { class: "tabs", role: "group", "aria-label": "How to sign in" }, buttons),
    body));
  passwordForm(body, done);
}

/// After a first factor: signed in, or the code form of the challenge.
function finish(body, outcome, done) {
  if (!outcome.challenge) return done(outcome.user);
  show(body, form("Two-factor code", [
    el("p", {}, "Enter the code from your authenticator app, or one of your backup codes."),
    field("Code", "code", { autocomplete: "one-time-code", inputmode: "numeric", required: true }),
  ], "Verify", async ({ code }) => done((await api.secondFactor(outcome.challenge, code.trim())).user)));
  body.querySelector("input").focus();
}

function passwordForm(body, done) {
  show(body, form("Sign in with a password", [
    field("Email", "email", { type: "email", autocomplete: "username", required: true }),
    field("Password", "password", { type: "password", autocomplete: "current-password", required: true }),
  ], "Sign in", async ({ email, password }) => finish(body, await api.login(email.trim(), password), done)));
}

function codeForm(body, done) {
  const send = form("Email me a code", [
    field("Email", "email", { type: "email", autocomplete: "username", required: true }),
  ], "Send code", async ({ email }) => {
    await api.sendCode(email.trim());
    const enter = form("Enter the emailed code", [
      el("p", {}, `If ${email.trim()} has an account, a 6-digit code is on its way.`),
      field("Code", "code", { autocomplete: "one-time-code", inputmode: "numeric", required: true }),
    ], "Sign in", async ({ code }) => finish(body, await api.codeLogin(email.trim(), code.trim()), done));
    show(body, enter);
    enter.querySelector("input").focus();
  });
  show(body, send);
}

function passkeyForm(body, done) {
  show(body, form("Sign in with a passkey", [
    field("Email (optional)", "email", { type: "email", autocomplete: "username webauthn" }),
  ], "Use a passkey", async ({ email }) => {
    if (!window.PublicKeyCredential) throw new Error("This browser has no passkey support.");
    const options = await api.passkeyOptions(email.trim());
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
    const credential = await navigator.credentials.get({ publicKey });
    if (!credential) throw new Error("No passkey was chosen.");
    finish(body, await api.passkeyLogin(options.challenge_id, credential.toJSON()), done);
  }));
}

