// Users (admins only): list, add, disable or enable, change a role.
import { api, get, post } from "./api.js";
import { announce, clear, h, when } from "./dom.js";

export function usersView(main, session) {
  const box = h("div", { id: "users" });
  const name = h("input", { id: "new-username", name: "username", required: true, autocomplete: "off" });
  const pass = h("input", { id: "new-password", name: "password", type: "password", required: true, autocomplete: "new-password" });
  const role = h("select", { id: "new-role", name: "role" }, h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"));
  const error = h("p", { class: "error", role: "alert", id: "new-user-error" });
  const form = h("form", { class: "inline" }, h("h2", {}, "Add a user"),
    h("label", { for: "new-username" }, "Username"), name, h("label", { for: "new-password" }, "Password"), pass,
    h("label", { for: "new-role" }, "Role"), role, h("button", { type: "submit" }, "Add"), error);
  clear(main, h("h1", {}, "Users"), session.role === "admin" ? [box, form] : h("p", {}, "Only an admin manages users."));
  const load = async () => {
    let list;
    try { list = (await get("/api/v1/users")).items; } catch (e) { clear(box, h("p", { class: "error", role: "alert" }, e.message)); return; }
    const change = async (u, body, what) => {
      try { await api("PATCH", `/api/v1/users/${u.id}`, body); announce(`${u.username}: ${what}.`); load(); }
      catch (e) { window.alert(e.message); }
    };
    clear(box, h("table", {}, h("caption", {}, `${list.length} users`),
      h("thead", {}, h("tr", {}, ["User", "Role", "State", "Created", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, list.map((u) => h("tr", { dataset: { user: u.username } },
        h("td", {}, u.username), h("td", {}, u.role), h("td", {}, u.disabled ? "disabled" : "enabled"), h("td", {}, when(u.created_at)),
        h("td", {}, u.id === session.id ? "(you)" : [
          h("button", { type: "button", onclick: () => change(u, { disabled: !u.disabled }, u.disabled ? "enabled" : "disabled") }, u.disabled ? "Enable" : "Disable"), " ",
          h("button", { type: "button", onclick: () => change(u, { role: u.role === "admin" ? "user" : "admin" }, "role changed") }, u.role === "admin" ? "Make user" : "Make admin")]))))));
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault(); error.textContent = "";
    try { await post("/api/v1/users", { username: name.value, password: pass.value, role: role.value }); name.value = ""; pass.value = ""; announce("User added."); load(); }
    catch (err) { error.textContent = err.message; }
  });
  if (session.role === "admin") load();
  return null;
}
