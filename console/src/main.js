// The console's entry: the session, the header, and a hash router (#/jobs, #/jobs/ID,
// #/submit, #/graphs/ID, #/graphs/ID/top, #/users). Each view is a function that
// fills <main> and returns a clean-up function (to close event streams, workers).
import "./style.css";
import { ApiError, api, setCsrf } from "./api.js";
import { clear, h } from "./dom.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { networkView } from "./network.js";
import { submitView } from "./submit.js";
import { topView } from "./top.js";
import { usersView } from "./users.js";

const main = document.getElementById("main");
const top = document.getElementById("top");
let session = null;
let cleanup = null;

const ROUTES = [
  [/^#\/jobs\/([0-9a-f-]{36})$/, (m) => jobView(main, m[1], session)],
  [/^#\/submit$/, () => submitView(main)],
  [/^#\/graphs\/([0-9a-f-]{36})$/, (m, q) => networkView(main, m[1], q)],
  [/^#\/graphs\/([0-9a-f-]{36})\/top$/, (m) => topView(main, m[1])],
  [/^#\/users$/, () => usersView(main, session)],
  [/^#\/jobs$/, (m, q) => jobsView(main, session, q)],
];

function header() {
  const nav = session ? h("nav", { "aria-label": "Main" },
    h("a", { href: "#/jobs" }, "Jobs"),
    h("a", { href: "#/submit" }, "New crawl"),
    session.role === "admin" ? h("a", { href: "#/users" }, "Users") : null,
    h("span", { class: "who" }, `${session.username} (${session.role})`),
    h("button", { type: "button", id: "logout", onclick: logout }, "Log out")) : null;
  clear(top, h("a", { href: "#/jobs", class: "brand" }, "crawlgraph"), nav,
    h("div", { id: "live", class: "visually-hidden", "aria-live": "polite" }));
}

async function logout() {
  try { await api("DELETE", "/console/session"); } catch { /* the cookie may be gone already */ }
  session = null;
  setCsrf("");
  location.hash = "#/login";
  route();
}

function loginView() {
  const error = h("p", { class: "error", id: "login-error", role: "alert" });
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password",
                            autocomplete: "current-password", required: true });
  const form = h("form", { class: "login", "aria-describedby": "login-error" },
    h("h1", {}, "Log in to crawlgraph"),
    h("label", { for: "username" }, "Username"), user,
    h("label", { for: "password" }, "Password"), pass,
    h("button", { type: "submit" }, "Log in"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      session = await api("POST", "/console/session", { username: user.value, password: pass.value });
      setCsrf(session.csrf_token);
      location.hash = "#/jobs";
      route();
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401
        ? "Wrong username or password." : e.message;
    }
  });
  clear(main, form);
  user.focus();
}

function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  header();
  if (!session) { loginView(); return; }
  const [path, q = ""] = location.hash.split("?");
  for (const [pattern, view] of ROUTES) {
    const m = path.match(pattern);
    if (m) {
      cleanup = view(m, new URLSearchParams(q)) || null;
      main.focus({ preventScroll: true });
      return;
    }
  }
  location.hash = "#/jobs";
}

window.addEventListener("hashchange", route);
window.addEventListener("crawlgraph:logged-out", () => { session = null; setCsrf(""); route(); });

try {
  session = await api("GET", "/console/session");
  setCsrf(session.csrf_token);
} catch {
  session = null;
}
route();
