// The API client: same origin, the session cookie sent by the browser, the CSRF token
// (from the login answer, kept in memory only) on every state-changing request.

let csrf = "";

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.hint = error.hint;
    this.field = error.field;
  }
}

export function setCsrf(token) { csrf = token || ""; }

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || { message: `The API answered ${response.status}.` };
    if (response.status === 401 && !path.startsWith("/console/session")) {
      window.dispatchEvent(new CustomEvent("crawlgraph:logged-out"));
    }
    throw new ApiError(response.status, error);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const del = (path) => api("DELETE", path);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
