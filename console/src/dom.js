// DOM helpers. Everything shown goes in as text: h() makes text nodes of strings,
// never HTML, and link() makes an <a> only for http(s) URLs. Crawled data (titles,
// URLs, anchor texts, error messages) is hostile and goes through these alone.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" || key === "checked") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const MAX_SHOWN = 300;

// A crawled string, bounded for the screen (the full text is in the title tooltip).
export function shown(text, max = MAX_SHOWN) {
  const s = String(text ?? "");
  return s.length > max ? s.slice(0, max) + "…" : s;
}

export function safeHref(url) {
  try {
    const parsed = new URL(String(url));
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// A crawled URL: a link that opens apart from the console, or plain text when it is
// not http(s) (javascript:, data: ...).
export function link(url, text = url) {
  const href = safeHref(url);
  const label = shown(text);
  if (href === null) return h("span", { class: "url", title: shown(url, 2000) }, label);
  return h("a", { href, rel: "noopener noreferrer", target: "_blank", class: "url",
                  title: shown(url, 2000) }, label);
}

export function fmt(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  return Number(n).toLocaleString("en", { maximumFractionDigits: digits });
}

export function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function announce(text) {
  const live = document.getElementById("live");
  if (live) live.textContent = text;
}

// A table: columns [{label, cell(row) -> node|string}], rows.
export function table(caption, columns, rows, empty = "Nothing yet.") {
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(r)))))
      : h("tr", {}, h("td", { colspan: columns.length }, empty))));
}
