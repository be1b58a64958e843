// The account page: the signed-in user's profile, password, two-factor,
// sessions, passkeys and API keys, through the same routes as any client.
// `?project=<id>` signs in to another project's account.

import * as api from "./{{api.js}}";
import { COLUMNS, card, choice, drawCard, el, field, form, show, table, say } from "./{{ui.js}}";
import { signIn } from "./{{signin.js}}";
import qrcode from "./{{qrcode.mjs}}";

const main = document.getElementById("main");
const who = document.getElementById("who");

api.useProject(new URLSearchParams(location.search).get("project"));
api.onSessionChange((now) => { if (!now) start(); });

function start() {
  show(who);
  signIn(main, "Sign in to your account", (user) => open(user));
}

function open(user) {
  show(who, el("span", {}, user.email), " ",
    el("button", { type: "button", on: { click: () => api.logout() } }, "Sign out"));
  const [twoFactor, sessions, passkeys, keys] = ["twofa-title", "sessions-title", "passkeys-title", "keys-title"]
    .map((id) => card(id));
  show(main,
    el("h1", {}, `Hello, ${user.name || user.email}`),
    profileCard(user),
    passwordCard(),
    twoFactor,
    sessions,
    passkeys,
    keys);
  showTwoFactor(twoFactor);
  listSessions(sessions);
  listPasskeys(passkeys);
  listKeys(keys);
  main.focus();
}

function profileCard(user) {
  return card("profile-title", "Profile",
    el("p", {}, "Email: ", el("strong", {}, user.email)),
    form("Profile", [
      field("Name", "name", { value: user.name || "", autocomplete: "name", maxlength: 200 }),
      field("Username", "username", { value: user.username || "", autocomplete: "nickname" }),
      field("Company", "company", { value: user.company || "", autocomplete: "organization" }),
    ], "Save profile", async (values) => {
      const changes = {};
      for (const name of ["name", "username", "company"]) {
        if (values[name].trim() !== (user[name] || "")) changes[name] = values[name].trim();
      }
      Object.assign(user, await api.own("PUT", "/me", changes));
      return "Profile saved.";
    }));
}

function passwordCard() {
  return card("password-title", "Password",
    form("Change password", [
      field("Current password", "current_password", { type: "password", autocomplete: "current-password" }),
      field("New password", "new_password", { type: "password", autocomplete: "new-password", minlength: 8 }),
    ], "Change password", async (values, node) => {
      await api.own("PUT", "/me/password", values);
      node.reset();
      return "Password changed. Your other sessions were signed out.";
    }));
}

function listSessions(card) {
  return drawCard(card, "Sessions", "sessions-title", () => api.own("GET", "/sessions"), ({ sessions }) => [
    table("Where you are signed in", [
      ...COLUMNS.sessions,
      ["", (s) => (s.current ? el("span", { class: "badge" }, "This session")
        : el("button", { type: "button", "data-session": s.id, on: { click: () => change(card, listSessions,
          "DELETE", `/sessions/${encodeURIComponent(s.id)}`, undefined, "Session revoked.") } }, "Revoke"))],
    ], sessions),
    el("div", { class: "actions" }, el("button", { type: "button", disabled: sessions.every((s) => s.current),
      on: { click: () => change(card, listSessions, "DELETE", "/sessions", undefined,
        "Every other session was signed out.") } }, "Sign out everywhere else")),
  ]);
}

/// The card drawn again by `render`, with `outcome` on its status line.
async function redraw(card, render, outcome, kind = "ok") {
  const status = await render(card);
  if (outcome) say(status, outcome, kind);
}

function listPasskeys(card) {
  return drawCard(card, "Passkeys", "passkeys-title", () => api.own("GET", "/passkey/list"), ({ passkeys }) => [
    table("Your passkeys", [
      ...COLUMNS.passkeys,
      ["", (p) => el("div", { class: "actions" },
        el("button", { type: "button", "data-rename": p.id, on: { click: () => renamePasskey(card, p) } }, "Rename"),
        el("button", { type: "button", "data-remove": p.id, on: { click: () => change(card, listPasskeys,
          "DELETE", `/passkey/${encodeURIComponent(p.id)}`, undefined, `Passkey ${p.name} removed.`) } }, "Remove"))],
    ], passkeys, "No passkeys yet."),
    form("Add a passkey", [
      field("Passkey name", "name", { maxlength: 100, placeholder: "This laptop" }),
    ], "Add a passkey", async ({ name }) => {
      if (!window.PublicKeyCredential) throw new Error("This browser has no passkey support.");
      const options = await api.own("POST", "/passkey/register/options", {});
      const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey);
      const credential = await navigator.credentials.create({ publicKey });
      if (!credential) throw new Error("No passkey was made.");
      const body = { challenge_id: options.challenge_id, credential: credential.toJSON() };
      if (name.trim()) body.name = name.trim();
      const added = await api.own("POST", "/passkey/register/verify", body);
      await redraw(card, listPasskeys, `Passkey ${added.name} added.`);
    }),
  ]);
}

/// A rename form in place of the passkey's row actions.
function renamePasskey(card, passkey) {
  const row = card.querySelector(`[data-rename="${CSS.escape(passkey.id)}"]`).closest("td");
  const rename = form(`Rename ${passkey.name}`, [
    field("New name", "name", { value: passkey.name, maxlength: 100, required: true }),
  ], "Save name", async ({ name }) => {
    await api.own("PATCH", `/passkey/${encodeURIComponent(passkey.id)}`, { name: name.trim() });
    await redraw(card, listPasskeys, "Passkey renamed.");
  });
  show(row, rename);
  rename.querySelector("input").focus();
}

function showTwoFactor(card) {
  return drawCard(card, "Two-factor sign-in", "twofa-title", () => api.own("GET", "/2fa/status"), (state) => {
    if (!state.enabled) {
      return [
        el("p", {}, "Two-factor is off. With it on, signing in also asks for a code from an authenticator app."),
        el("div", { class: "actions" }, el("button", { type: "button", class: "primary",
          on: { click: () => setUpTwoFactor(card) } }, "Set up two-factor")),
      ];
    }
    return [
      el("p", {}, `Two-factor is on. ${state.backup_codes_remaining} backup codes left.`),
      form("New backup codes", [
        field("Code from your app", "code", { autocomplete: "one-time-code", inputmode: "numeric", required: true }),
      ], "Make new backup codes", async ({ code }) => {
        const { backup_codes: codes } = await api.own("POST", "/2fa/backup-codes/regenerate", { code: code.trim() });
        await redraw(card, showTwoFactor, "New backup codes made; the old ones no longer work.");
        card.append(backupCodes(codes));
      }),
      form("Turn two-factor off", [
        field("Password", "password", { type: "password", autocomplete: "current-password", required: true }),
        field("Code from your app", "code", { autocomplete: "one-time-code", inputmode: "numeric", required: true }),
      ], "Turn two-factor off", async ({ password, code }) => {
        await api.own("POST", "/2fa/disable", { password, code: code.trim() });
        await redraw(card, showTwoFactor, "Two-factor is off.");
      }),
    ];
  });
}

/// The secret as a QR code drawn here from its `otpauth://` URL (and as
/// text, to type in), then the first code, which turns two-factor on.
async function setUpTwoFactor(card) {
  const status = card.querySelector(".status");
  let setup;
  try {
    setup = await api.own("POST", "/2fa/setup");
  } catch (error) {
    say(status, error.message, "error");
    return;
  }
  const qr = qrcode(0, "M");
  qr.addData(setup.qr_code_url);
  qr.make();
  const confirm = form("Confirm two-factor", [
    field("Code from your app", "code", { autocomplete: "one-time-code", inputmode: "numeric", required: true }),
  ], "Turn two-factor on", async ({ code }) => {
    const { backup_codes: codes } = await api.own("POST", "/2fa/enable", { code: code.trim() });
    await redraw(card, showTwoFactor, "Two-factor is on.");
    card.append(backupCodes(codes));
  });
  show(card,
    el("h2", { id: "twofa-title" }, "Two-factor sign-in"),
    el("p", {}, "Scan this code with your authenticator app, then enter the code it shows."),
    el("img", { class: "qr", src: qr.createDataURL(4, 4), alt: "QR code of your two-factor secret" }),
    el("p", {}, "Or type the secret: ", el("code", { class: "secret", id: "totp-secret" }, setup.secret)),
    confirm);
  confirm.querySelector("input").focus();
}

/// Backup codes, shown this once.
function backupCodes(codes) {
  return el("div", { class: "once", role: "region", "aria-label": "Your backup codes" },
    el("p", {}, el("strong", {}, "Your backup codes. "),
      "Keep them somewhere safe: each signs in once without the app, and they are not shown again."),
    el("ul", { class: "codes", id: "backup-codes" }, codes.map((code) => el("li", {}, el("code", {}, code)))));
}

const EXPIRIES = [["", "Never"], ["30d", "30 days"], ["90d", "90 days"], ["365d", "1 year"]];

function listKeys(card) {
  return drawCard(card, "API keys", "keys-title", () => api.own("GET", "/api-keys"), ({ api_keys: keys }) => [
    table("Your API keys", [
      ...COLUMNS.apiKeys,
      ["", (k) => el("button", { type: "button", "data-key": k.id, on: { click: () => change(card, listKeys,
        "DELETE", `/api-keys/${encodeURIComponent(k.id)}`, undefined, `API key ${k.name} revoked.`) } }, "Revoke")],
    ], keys, "No API keys yet."),
    form("New API key", [
      field("Key name", "name", { required: true, maxlength: 100 }),
      field("Scopes (separated by spaces)", "scopes", { placeholder: "read write" }),
      choice("Expires after", "expires_in", EXPIRIES, ""),
    ], "Create key", async ({ name, scopes, expires_in: expiresIn }) => {
      const body = { name: name.trim(), scopes: scopes.split(/[\s,]+/).filter(Boolean) };
      if (expiresIn) body.expires_in = expiresIn;
      const made = await api.own("POST", "/api-keys", body);
      await listKeys(card);
      card.append(shownOnce(made));
    }),
  ]);
}

/// The new key in full, this once, with a way to copy it.
function shownOnce(made) {
  const value = el("code", { class: "secret", id: "new-key" }, made.api_key);
  const copied = el("span", { role: "status", "aria-live": "polite" });
  return el("div", { class: "once", role: "region", "aria-label": "Your new API key" },
    el("p", {}, el("strong", {}, `Your new key ${made.name}. `), "Copy it now: it is not shown again."),
    value, " ",
    el("button", { type: "button", on: { click: async () => {
      await navigator.clipboard.writeText(made.api_key);
      copied.textContent = "Copied.";
    } } }, "Copy"), " ", copied);
}

/// One change through the API, then the card drawn again with its outcome.
async function change(card, render, method, path, body, done) {
  try {
    await api.own(method, path, body);
    await redraw(card, render, done);
  } catch (error) {
    await redraw(card, render, error.message, "error");
  }
}

start();
