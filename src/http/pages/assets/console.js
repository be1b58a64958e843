// The admin console: for admins and superadmins of the default project,
// through the admin API (`/api/v1/admin/...`) as any client calls it.

import * as api from "./{{api.js}}";
import { el, field, form, show, table, when, say } from "./{{ui.js}}";
import { signIn } from "./{{signin.js}}";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const ADMIN = "/api/v1/admin";

api.onSessionChange((now) => { if (!now) start(); });

function start() {
  show(nav);
  show(who);
  signIn(main, "Sign in to the console", opened);
}

async function opened() {
  const me = await api.own("GET", "/me");
  show(who, el("span", {}, `${me.email} (${me.role})`), " ",
    el("button", { type: "button", on: { click: () => api.logout() } }, "Sign out"));
  if (me.role !== "admin" && me.role !== "superadmin") {
    show(main, el("section", { class: "card" }, el("h1", {}, "Not an administrator"),
      el("p", {}, "The console is for administrators. Your own account is on the "),
      el("a", { href: "../account/" }, "account page"), "."));
    return;
  }
  show(nav, el("a", { href: "#projects", "aria-current": "page" }, "Projects"));
  projects();
}

async function projects() {
  const list = el("section", { class: "card", "aria-labelledby": "projects-title" });
  show(main, el("h1", {}, "Projects"), list, createCard(list));
  await listProjects(list);
  main.focus();
}

async function listProjects(card) {
  const heading = el("h2", { id: "projects-title" }, "All projects");
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  try {
    const { projects } = await api.authed("GET", `${ADMIN}/projects`);
    show(card, heading, table("Projects", [
      ["Id", (p) => el("code", {}, p.id)],
      ["Name", (p) => p.name],
      ["Environment", (p) => p.environment],
      ["State", (p) => (p.enabled ? "enabled" : el("span", { class: "badge warn" }, "disabled"))],
      ["Created", (p) => when(p.created_at)],
    ], projects), status);
  } catch (error) {
    show(card, heading, status);
    say(status, error.message, "error");
  }
}

function createCard(list) {
  return el("section", { class: "card", "aria-labelledby": "create-title" },
    el("h2", { id: "create-title" }, "New project"),
    form("New project", [
      field("Name", "name", { required: true, maxlength: 100 }),
      field("Id (optional: made from the name)", "id", { pattern: "[a-z0-9_-]{1,64}" }),
      field("Environment", "environment", { value: "production" }),
      field("Description", "description", { multiline: true, maxlength: 1000 }),
    ], "Create project", async (values, node) => {
      const body = { name: values.name.trim() };
      for (const name of ["id", "environment", "description"]) {
        if (values[name].trim()) body[name] = values[name].trim();
      }
      const made = await api.authed("POST", `${ADMIN}/projects`, body);
      node.reset();
      await listProjects(list);
      return `Project ${made.id} created.`;
    }));
}

start();
