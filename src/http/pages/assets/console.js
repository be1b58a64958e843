// The admin console: for admins and superadmins of the default project,
// through the admin API (`/api/v1/admin/...`) as any client calls it.
// Sections by the address's fragment: #overview/<project> (the first),
// #projects, #project/<id>, #users/<project>, #audit.

import * as api from "./{{api.js}}";
import { COLUMNS, card, choice, drawCard, el, field, form, show, table, when, say } from "./{{ui.js}}";
import { signIn } from "./{{signin.js}}";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const ADMIN = "/api/v1/admin";
const PAGE = 20;
let me = null;

api.onSessionChange((now) => { if (!now) start(); });
window.addEventListener("hashchange", () => { if (me) route(); });

function start() {
  me = null;
  show(nav);
  show(who);
  signIn(main, "Sign in to the console", opened);
}

async function opened() {
  const user = await api.own("GET", "/me");
  show(who, el("span", {}, `${user.email} (${user.role})`), " ",
    el("button", { type: "button", on: { click: () => api.logout() } }, "Sign out"));
  if (user.role !== "admin" && user.role !== "superadmin") {
    show(main, el("section", { class: "card" }, el("h1", {}, "Not an administrator"),
      el("p", {}, "The console is for administrators. Your own account is on the ",
        el("a", { href: "../account/" }, "account page"), ".")));
    return;
  }
  me = user;
  route();
}

const SECTIONS = [["#overview/default", "Overview"], ["#projects", "Projects"], ["#users/default", "Users"],
  ["#audit", "Audit log"]];

/// The section the fragment names, drawn afresh.
function route() {
  const [name, arg] = decodeURIComponent(location.hash.slice(1)).split("/");
  const current = { projects: "#projects", project: "#projects", users: "#users", audit: "#audit" }[name] || "#overview";
  show(nav, SECTIONS.map(([href, label]) =>
    el("a", { href, "aria-current": href.split("/")[0] === current ? "page" : null }, label)));
  const draw = {
    projects, project: () => project(arg), users: () => users(arg || "default"), audit: audit,
  }[name] || (() => overview(arg || "default"));
  draw();
  main.focus();
}

/// Every project, as the admin API lists them.
async function allProjects() {
  return (await api.authed("GET", `${ADMIN}/projects`)).projects;
}

/// A picker of every project; choosing one opens `section` of it.
async function projectPicker(section, chosen) {
  return choice("Project", "project", (await allProjects()).map((p) => [p.id, `${p.name} (${p.id})`]), chosen,
    { on: { change: (event) => { location.hash = `#${section}/${encodeURIComponent(event.target.value)}`; } } });
}

// ---- Overview ----

async function overview(projectId) {
  const figures = card("overview-title");
  show(main, el("h1", {}, "Overview"), await projectPicker("overview", projectId), figures);
  const load = () => api.authed("GET", `${ADMIN}/overview?project=${encodeURIComponent(projectId)}`);
  await drawCard(figures, `${projectId} at a glance`, "overview-title", load, (o) => [
    el("dl", { class: "figures" },
      figure("Accounts", o.accounts, `in ${o.project}`, `#users/${encodeURIComponent(o.project)}`),
      figure("Sign-ins", o.logins_last_hour, "in the last hour"),
      figure("Failed sign-ins", o.failed_logins_last_hour, "in the last hour", "#audit/" + encodeURIComponent(o.project)),
      figure("Active sessions", o.active_sessions, o.active_sessions_estimated ? "every project (an estimate)" : "every project")),
    el("p", { class: "muted" }, `As of ${when(o.at)}.`),
    el("div", { class: "actions" }, el("button", { type: "button", on: { click: () => overview(projectId) } }, "Refresh")),
  ]);
}

/// One figure of the overview: its name, number, what it counts, and where to look closer.
function figure(name, value, scope, href) {
  const number = el("span", { class: "number" }, Number(value).toLocaleString());
  return el("div", { class: "figure", "data-figure": name },
    el("dt", {}, name), el("dd", {}, href ? el("a", { href }, number) : number, el("span", { class: "scope" }, scope)));
}

// ---- Projects ----

async function projects() {
  const list = card("projects-title");
  show(main, el("h1", {}, "Projects"), list, createCard());
  await drawCard(list, "All projects", "projects-title", allProjects, (all) => table("Projects", [
    ["Id", (p) => el("a", { href: `#project/${encodeURIComponent(p.id)}` }, el("code", {}, p.id))],
    ["Name", (p) => p.name],
    ["Environment", (p) => p.environment],
    ["State", (p) => (p.enabled ? "enabled" : el("span", { class: "badge warn" }, "disabled"))],
    ["Created", (p) => when(p.created_at)],
  ], all));
}

function createCard() {
  return card("create-title", "New project",
    form("New project", [
      field("Name", "name", { required: true, maxlength: 100 }),
      field("Id (optional: made from the name)", "id", { pattern: "[a-z0-9_-]{1,64}" }),
      field("Environment", "environment", { value: "production" }),
      field("Description", "description", { multiline: true, maxlength: 1000 }),
    ], "Create project", async (values) => {
      const body = { name: values.name.trim() };
      for (const name of ["id", "environment", "description"]) {
        if (values[name].trim()) body[name] = values[name].trim();
      }
      const made = await api.authed("POST", `${ADMIN}/projects`, body);
      await projects();
      say(main.querySelector("section[aria-labelledby='create-title'] .status"), `Project ${made.id} created.`, "ok");
    }));
}

// ---- One project ----

async function project(id) {
  const path = `${ADMIN}/projects/${encodeURIComponent(id)}`;
  show(main, el("h1", {}, `Project ${id}`));
  let current;
  try {
    current = await api.authed("GET", path);
  } catch (error) {
    main.append(el("p", { class: "status", "data-kind": "error" }, error.message));
    return;
  }
  main.append(
    el("p", {}, el("a", { href: `#users/${encodeURIComponent(id)}` }, "Users of this project"), " · ",
      el("a", { href: `#audit/${encodeURIComponent(id)}` }, "Its audit log")),
    detailsCard(path, current), settingsCard(path, current), deleteCard(path, current));
}

/// A checkbox: the form's values hold it only when ticked.
function checkbox(label, name, checked) {
  const box = field(label, name, { type: "checkbox", checked });
  box.classList.add("check");
  return box;
}

function detailsCard(path, current) {
  const description = field("Description", "description", { multiline: true, maxlength: 1000 });
  description.querySelector("textarea").value = current.description || "";
  return card("details-title", "Details",
    form("Project details", [
      field("Name", "name", { value: current.name, required: true, maxlength: 100 }),
      field("Environment", "environment", { value: current.environment }),
      description,
      checkbox("Enabled (a disabled project serves no sign-in and its tokens verify nowhere)", "enabled", current.enabled),
    ], "Save details", async (values, node) => {
      const changed = await api.authed("PATCH", path, {
        name: values.name.trim(),
        environment: values.environment.trim(),
        description: values.description.trim() || null,
        enabled: node.elements.enabled.checked,
      });
      Object.assign(current, changed);
      return changed.enabled ? "Details saved." : "Details saved; the project is disabled.";
    }));
}

/// Every plain setting as a field of its type; provider maps stay in the API.
function settingsCard(path, current) {
  const entries = Object.entries(current.settings).filter(([, v]) => typeof v !== "object");
  const fields = entries.map(([name, value]) => (typeof value === "boolean"
    ? checkbox(name.replaceAll("_", " "), `settings.${name}`, value)
    : field(name.replaceAll("_", " "), `settings.${name}`, { type: "number", value, required: true })));
  return card("settings-title", "Settings",
    form("Project settings", fields, "Save settings", async (values, node) => {
      const settings = {};
      for (const [name, value] of entries) {
        const control = node.elements[`settings.${name}`];
        const now = typeof value === "boolean" ? control.checked : Number(values[`settings.${name}`]);
        if (now !== value) settings[name] = now;
      }
      if (Object.keys(settings).length === 0) return "Nothing changed.";
      const changed = await api.authed("PATCH", path, { settings });
      Object.assign(current, changed);
      entries.forEach((entry) => { entry[1] = changed.settings[entry[0]]; });
      return "Settings saved.";
    }));
}

/// Deletion asks for the project's id typed out.
function deleteCard(path, current) {
  const danger = card("delete-title", "Delete this project",
    el("p", {}, "Its users, sessions and keys stop working at once. This cannot be undone."),
    typedConfirmation("Delete project", `Type ${current.id} to confirm`, current.id, "id", async () => {
      await api.authed("DELETE", path);
      location.hash = "#projects";
    }));
  danger.classList.add("danger");
  return danger;
}

/// A form that does `act` only once `expected` is typed out exactly.
function typedConfirmation(title, label, expected, what, act) {
  return form(title, [field(label, "confirm", { autocomplete: "off", required: true })], title, async ({ confirm }) => {
    if (confirm.trim() !== expected) {
      const error = new Error(`The ${what} typed does not match.`);
      error.fields = { confirm: `type ${expected} exactly` };
      throw error;
    }
    await act();
  });
}

// ---- Users ----

async function users(projectId, cursor = null, email = "") {
  const base = `${ADMIN}/projects/${encodeURIComponent(projectId)}/users`;
  const list = card("users-title");
  const search = form("Find a user", [
    field("Email", "email", { type: "email", value: email, autocomplete: "off" }),
  ], "Search", ({ email: wanted }) => users(projectId, null, wanted.trim()));
  show(main, el("h1", {}, "Users"), await projectPicker("users", projectId), el("section", { class: "card" }, search),
    list);
  const query = email ? `?email=${encodeURIComponent(email)}` : `?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
  const load = () => api.authed("GET", base + query);
  return drawCard(list, `Users of ${projectId}`, "users-title", load, ({ users: page, next_cursor: next }, status) => [
    page.length === 0 ? el("p", {}, email ? `No user of ${projectId} has the address ${email}.` : "No users yet.") : null,
    page.length ? table("Users", [
      ["Email", (u) => u.email],
      ["Name", (u) => u.name],
      ["Role", (u) => u.role],
      ["State", (u) => (u.disabled ? el("span", { class: "badge warn" }, "disabled") : "active")],
      ["Created", (u) => when(u.created_at)],
      ["", (u) => el("button", { type: "button", "data-user": u.id,
        on: { click: () => manage(list, status, `${base}/${encodeURIComponent(u.id)}`, u, projectId) } }, "Manage")],
    ], page) : null,
    el("div", { class: "actions" },
      cursor || email ? el("button", { type: "button", on: { click: () => users(projectId) } }, "First page") : null,
      next ? el("button", { type: "button", on: { click: () => users(projectId, next) } }, "Next page") : null),
  ]);
}

/// One user's panel under the list: role, disabling, deletion.
function manage(list, status, path, user, projectId) {
  list.querySelector(".manage")?.remove();
  const roles = projectId === "default" ? ["user", "admin", "superadmin"] : ["user", "admin"];
  const done = async (text) => say(await users(projectId), text, "ok");
  const panel = el("div", { class: "manage", role: "region", "aria-label": `Manage ${user.email}` },
    el("h3", {}, user.email),
    el("p", {}, `Id ${user.id} · role ${user.role} · ${user.disabled ? "disabled" : "active"} · ` +
      `two-factor ${user.two_factor_enabled ? "on" : "off"}`),
    form("Change role", [
      choice("Role", "role", roles.map((r) => [r, r]), user.role),
    ], "Change role", async ({ role }) => done(`${user.email} is now ${(await api.authed("PATCH", path, { role })).role}.`)),
    el("div", { class: "actions" }, el("button", { type: "button", on: { click: async (event) => {
      event.currentTarget.disabled = true;
      try {
        const changed = await api.authed("PATCH", path, { disabled: !user.disabled });
        await done(`${user.email} is ${changed.disabled ? "disabled: every session ended" : "enabled"}.`);
      } catch (error) {
        say(status, error.message, "error");
      }
    } } }, user.disabled ? "Enable user" : "Disable user")),
    typedConfirmation("Delete user", `Type ${user.email} to delete the account`, user.email, "address", async () => {
      await api.authed("DELETE", path);
      await done(`${user.email} was deleted.`);
    }));
  list.append(panel);
  panel.querySelector("select").focus();
  holdings(panel, path);
}

/// What the user holds, read-only: sessions, API keys, passkeys.
async function holdings(panel, path) {
  const lists = [
    ["sessions", "Sessions", COLUMNS.sessions],
    ["api-keys", "API keys", COLUMNS.apiKeys],
    ["passkeys", "Passkeys", COLUMNS.passkeys],
  ];
  for (const [route, title, columns] of lists) {
    const box = el("div", { class: "holding", "data-holding": route });
    panel.append(box);
    try {
      const answer = await api.authed("GET", `${path}/${route}`);
      const rows = answer[route.replace("-", "_")];
      show(box, rows.length ? table(`${title} (${rows.length})`, columns, rows) : el("p", {}, `${title}: none.`));
    } catch (error) {
      show(box, el("p", { class: "status", "data-kind": "error" }, `${title}: ${error.message}`));
    }
  }
}

// ---- Audit log ----

const KINDS = ["user_registered", "login_succeeded", "login_failed", "two_factor_enabled", "two_factor_disabled",
  "two_factor_failed", "backup_codes_regenerated", "password_changed", "password_reset", "initial_password_set",
  "email_verified", "unverified_credentials_ended", "code_failed", "session_revoked", "api_key_created",
  "api_key_revoked", "refresh_token_reused", "project_created", "project_changed", "project_deleted",
  "user_changed_by_admin", "user_deleted_by_admin"];

async function audit(filter = {}) {
  const chosen = { project: decodeURIComponent(location.hash.split("/")[1] || "") || "default", ...filter };
  const list = card("audit-title");
  const filters = form("Filter the audit log", [
    choice("Project", "project", (await allProjects()).map((p) => [p.id, p.id]), chosen.project),
    field("User id", "user", { value: chosen.user || "", autocomplete: "off" }),
    choice("Kind", "kind", [["", "any"], ...KINDS.map((k) => [k, k])], chosen.kind || ""),
  ], "Show events", (values) => audit({ project: values.project, user: values.user.trim(), kind: values.kind }));
  show(main, el("h1", {}, "Audit log"), el("section", { class: "card" }, filters), list);
  const query = new URLSearchParams({ project: chosen.project, limit: PAGE });
  if (chosen.user) query.set("user", chosen.user);
  if (chosen.kind) query.set("kind", chosen.kind);
  if (chosen.cursor) query.set("cursor", chosen.cursor);
  const load = () => api.authed("GET", `${ADMIN}/audit-log?${query}`);
  await drawCard(list, "Events, newest first", "audit-title", load, ({ events, next_cursor: next }) => [
    events.length ? table("Audit events", [
      ["When", (e) => when(e.at)],
      ["Kind", (e) => el("code", {}, e.kind)],
      ["User", (e) => e.user_id || "unknown"],
      ["IP address", (e) => e.ip || ""],
      ["Detail", (e) => [e.detail || "", e.count > 1 ? ` (${e.count} times)` : ""].join("")],
    ], events) : el("p", {}, "No events match."),
    el("div", { class: "actions" },
      chosen.cursor ? el("button", { type: "button", on: { click: () => audit({ ...chosen, cursor: null }) } }, "Newest") : null,
      next ? el("button", { type: "button", on: { click: () => audit({ ...chosen, cursor: next }) } }, "Older events") : null),
  ]);
}

start();
