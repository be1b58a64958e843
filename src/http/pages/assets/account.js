// The account page: the signed-in user's profile, password and sessions,
// through the same routes as any client. `?project=<id>` signs in to
// another project's account.

import * as api from "./{{api.js}}";
import { el, field, form, show, table, when, say } from "./{{ui.js}}";
import { signIn } from "./{{signin.js}}";

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
  const sessions = el("section", { class: "card", "aria-labelledby": "sessions-title" });
  show(main,
    el("h1", {}, `Hello, ${user.name || user.email}`),
    profileCard(user),
    passwordCard(),
    sessions);
  listSessions(sessions);
  main.focus();
}

function profileCard(user) {
  const card = el("section", { class: "card", "aria-labelledby": "profile-title" },
    el("h2", { id: "profile-title" }, "Profile"),
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
  return card;
}

function passwordCard() {
  return el("section", { class: "card", "aria-labelledby": "password-title" },
    el("h2", { id: "password-title" }, "Password"),
    form("Change password", [
      field("Current password", "current_password", { type: "password", autocomplete: "current-password" }),
      field("New password", "new_password", { type: "password", autocomplete: "new-password", minlength: 8 }),
    ], "Change password", async (values, node) => {
      await api.own("PUT", "/me/password", values);
      node.reset();
      return "Password changed. Your other sessions were signed out.";
    }));
}

async function listSessions(card) {
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const heading = el("h2", { id: "sessions-title" }, "Sessions");
  try {
    const { sessions } = await api.own("GET", "/sessions");
    const others = sessions.filter((s) => !s.current).length;
    show(card, heading,
      table("Where you are signed in", [
        ["Device", (s) => s.user_agent || "unknown"],
        ["IP address", (s) => s.ip || "unknown"],
        ["Signed in", (s) => when(s.created_at)],
        ["Last seen", (s) => when(s.last_seen_at)],
        ["", (s) => (s.current ? el("span", { class: "badge" }, "This session")
          : el("button", { type: "button", "data-session": s.id,
            on: { click: () => act(card, status, "DELETE", `/sessions/${encodeURIComponent(s.id)}`, "Session revoked.") } },
          "Revoke"))],
      ], sessions),
      el("div", { class: "actions" }, el("button", { type: "button", disabled: others === 0,
        on: { click: () => act(card, status, "DELETE", "/sessions", "Every other session was signed out.") } },
      "Sign out everywhere else")),
      status);
  } catch (error) {
    show(card, heading, status);
    say(status, error.message, "error");
  }
}

/// A change to the sessions, then the list again with the outcome.
async function act(card, status, method, path, done) {
  try {
    await api.own(method, path);
    await listSessions(card);
    say(card.querySelector(".status"), done, "ok");
  } catch (error) {
    say(status, error.message, "error");
  }
}

start();
