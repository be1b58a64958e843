// Small DOM helpers shared by the pages: elements, labelled fields, the
// API's errors shown next to the fields they name, dates.

let ids = 0;

/// `el("button", {type: "submit", class: "primary"}, "Save")`; an `on`
/// property maps event names to handlers.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else if (value !== false && value !== null && value !== undefined) {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

/// A labelled input whose error text sits under it, tied to it for
/// screen readers. `name` is the API's field name.
export function field(label, name, attrs = {}) {
  const id = `f${++ids}-${name}`;
  const error = el("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  const input = el(attrs.multiline ? "textarea" : "input", {
    id, name, "aria-describedby": `${id}-error`, ...attrs, multiline: null,
  });
  return el("div", { class: "field" }, el("label", { for: id }, label), input, error);
}

/// A labelled select of `options` (`[value, text]` pairs), `selected`
/// chosen; `attrs` go on the select.
export function choice(label, name, options, selected, attrs = {}) {
  const id = `f${++ids}-${name}`;
  return el("div", { class: "field" }, el("label", { for: id }, label),
    el("select", { id, name, ...attrs },
      options.map(([value, text]) => el("option", { value, selected: value === selected }, text))));
}

/// A form with its fields, a submit button and a status line. `submit`
/// gets the values by field name; an error it throws is shown: the
/// API's `fields` next to their fields, anything else on the status line.
export function form(title, fields, button, submit) {
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const node = el("form", { "aria-label": title, novalidate: true }, fields,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, button)), status);
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(node);
    const values = Object.fromEntries(new FormData(node).entries());
    const submitButton = node.querySelector("button[type=submit]");
    submitButton.disabled = true;
    try {
      const done = await submit(values, node);
      if (typeof done === "string") say(status, done, "ok");
    } catch (error) {
      showError(node, status, error);
    } finally {
      submitButton.disabled = false;
    }
  });
  node.status = status;
  return node;
}

export function clearErrors(node) {
  node.querySelectorAll(".field-error").forEach((p) => { p.textContent = ""; });
  node.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
  const status = node.querySelector(".status");
  if (status) say(status, "", "");
}

/// The API's error, each named field's problem next to it.
export function showError(node, status, error) {
  const fields = (error && error.fields) || {};
  let placed = false;
  for (const [name, problem] of Object.entries(fields)) {
    const input = node.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    document.getElementById(`${input.id}-error`).textContent = `${problem}`;
    if (!placed) input.focus();
    placed = true;
  }
  say(status, placed ? "Please correct the marked fields." : (error && error.message) || String(error), "error");
}

export function say(node, text, kind) {
  node.textContent = text;
  node.dataset.kind = kind;
}

/// An RFC 3339 time as the reader's local date and time; "never" for null.
export function when(value) {
  return value ? new Date(value).toLocaleString() : "never";
}

/// Replaces `node`'s children.
export function show(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

/// A card labelled by its heading `id`: with a `title`, the heading and
/// `children` now; without one, empty for `drawCard` to fill.
export function card(id, title, ...children) {
  return el("section", { class: "card", "aria-labelledby": id }, title ? el("h2", { id }, title) : null, children);
}

/// Draws `card`: its heading, what `draw(data, status)` makes of what
/// `load` fetched, and a status line, which it returns (a change's outcome
/// goes there); a failed load is told on the status line.
export async function drawCard(card, title, id, load, draw) {
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const heading = el("h2", { id }, title);
  try {
    show(card, heading, draw(await load(), status), status);
  } catch (error) {
    show(card, heading, status);
    say(status, error.message, "error");
  }
  return status;
}

/// The columns of a user's sessions, API keys and passkeys: the same on
/// the account page and in the console's user detail (the same lists).
export const COLUMNS = {
  sessions: [
    ["Device", (s) => s.user_agent || "unknown"],
    ["IP address", (s) => s.ip || "unknown"],
    ["Signed in", (s) => when(s.created_at)],
    ["Last seen", (s) => when(s.last_seen_at)],
  ],
  apiKeys: [
    ["Name", (k) => k.name],
    ["Key", (k) => el("code", {}, `${k.prefix}…`)],
    ["Scopes", (k) => k.scopes.join(" ") || "none"],
    ["Last used", (k) => when(k.last_used_at)],
    ["Expires", (k) => (k.expires_at ? when(k.expires_at) : "never")],
  ],
  passkeys: [
    ["Name", (p) => p.name],
    ["Added", (p) => when(p.created_at)],
    ["Last used", (p) => when(p.last_used_at)],
  ],
};

/// A table of `rows` with `columns` of [heading, cell(row)]; with no
/// rows, the `empty` text instead (when given).
export function table(caption, columns, rows, empty) {
  if (!rows.length && empty) return el("p", { class: "muted" }, empty);
  return el("table", {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, columns.map(([heading]) => el("th", { scope: "col" }, heading)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([, cell]) => el("td", {}, cell(row)))))));
}
