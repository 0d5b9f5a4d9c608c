// The submit form, generated from GET /api/v1/spiders: each argument of the chosen
// spider becomes a field of its type; the API validates, and its error is shown next
// to the field it names (`error.field`, e.g. `start_urls[0]`).
import { ApiError, get, post } from "./api.js";
import { clear, h } from "./dom.js";

const HIDDEN = new Set(["job_id"]);
// The job's own fields (not spider arguments), described here.
const JOB_FIELDS = [
  { name: "workers", type: "int", default: 1, help: "Crawler processes (1–64)." },
  { name: "tags", type: "list[str]", default: [], help: "Labels to find the job by." },
  { name: "priority", type: "int", default: 0, help: "-100 to 100; higher runs first." },
];

function kind(type) {
  const literal = type.match(/^Literal\[(.*)\]$/);
  if (literal) return { kind: "choice", options: literal[1].split(",").map((s) => s.trim().replace(/^'|'$/g, "")) };
  if (type.startsWith("list[")) return { kind: "list" };
  if (type === "bool") return { kind: "bool" };
  if (/^(int|float)( \| None)?$/.test(type)) return { kind: "number", optional: type.endsWith("None") };
  return { kind: "text", optional: type.endsWith("None") };
}

function field(arg) {
  const id = `field-${arg.name}`;
  const k = kind(arg.type);
  const hasDefault = arg.default !== null && arg.default !== undefined && arg.default !== "" &&
    !(Array.isArray(arg.default) && !arg.default.length) && k.kind !== "bool";
  // The argument's help comes from the spider's own description of it (GET /spiders).
  const about = [arg.help, k.kind === "list" ? "One a line." : null].filter(Boolean).join(" ") || arg.type;
  const help = `${about}${hasDefault ? ` Default: ${arg.default}.` : ""}`;
  let input;
  if (k.kind === "choice") {
    input = h("select", { id, name: arg.name }, k.options.map((o) => h("option", { value: o, selected: o === arg.default }, o)));
  } else if (k.kind === "list") {
    input = h("textarea", { id, name: arg.name, rows: arg.name === "start_urls" ? 3 : 2,
      value: (arg.default || []).join("\n"), placeholder: "one a line" });
  } else if (k.kind === "bool") {
    input = h("input", { id, name: arg.name, type: "checkbox", checked: Boolean(arg.default) });
  } else {
    input = h("input", { id, name: arg.name, type: k.kind === "number" ? "number" : "text",
      value: arg.default ?? "", step: k.kind === "number" ? "any" : undefined });
  }
  const error = h("p", { class: "field-error", id: `${id}-error` });
  const hint = h("p", { class: "help", id: `${id}-help` }, help);
  input.setAttribute("aria-describedby", `${id}-help ${id}-error`);
  const label = h("label", { for: id }, arg.name.replaceAll("_", " "));
  const wrap = h("div", { class: `field field-${k.kind}`, dataset: { field: arg.name } },
    k.kind === "bool" ? h("div", { class: "check-row" }, input, label) : [label, input], hint, error);
  return { arg, k, input, error, wrap };
}

function value(f) {
  const { k, input, arg } = f;
  if (k.kind === "bool") return input.checked;
  if (k.kind === "list") return input.value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (k.kind === "number") {
    if (input.value === "") return k.optional ? null : arg.default;
    return Number(input.value);
  }
  if (k.kind === "text" && input.value === "" && k.optional) return null;
  return input.value;
}

export function submitView(main) {
  const box = h("div", {}, h("p", {}, "Loading the spiders…"));
  clear(main, h("h1", {}, "New crawl"), box);
  (async () => {
    const spiders = (await get("/api/v1/spiders")).items;
    const select = h("select", { id: "field-spider", name: "spider" },
      spiders.map((s) => h("option", { value: s.name, selected: s.name === "site" }, s.name)));
    const about = h("p", { class: "help", id: "field-spider-help" });
    const spiderError = h("p", { class: "field-error", id: "field-spider-error" });
    select.setAttribute("aria-describedby", "field-spider-help field-spider-error");
    const fieldset = h("fieldset", {}, h("legend", {}, "Crawl"));
    const jobset = h("fieldset", {}, h("legend", {}, "Job"));
    const formError = h("p", { class: "error", role: "alert", id: "form-error" });
    let fields = [];
    const jobFields = JOB_FIELDS.map(field);
    jobFields.forEach((f) => jobset.append(f.wrap));
    const draw = () => {
      const spider = spiders.find((s) => s.name === select.value);
      about.textContent = spider.description || "";
      fields = spider.arguments.filter((a) => !HIDDEN.has(a.name)).map(field);
      clear(fieldset, h("legend", {}, "Crawl"), fields.map((f) => f.wrap));
    };
    select.addEventListener("change", draw);
    draw();
    const form = h("form", { class: "submit", novalidate: true },
      h("div", { class: "field" }, h("label", { for: "field-spider" }, "spider"), select, about, spiderError),
      fieldset, jobset, h("button", { type: "submit" }, "Start the crawl"), formError);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const all = [...fields, ...jobFields];
      all.forEach((f) => { f.error.textContent = ""; f.input.removeAttribute("aria-invalid"); });
      spiderError.textContent = ""; formError.textContent = "";
      const body = { spider: select.value };
      for (const f of all) {
        const v = value(f);
        if (v !== f.arg.default && !(Array.isArray(v) && !v.length && Array.isArray(f.arg.default))) body[f.arg.name] = v;
      }
      if (!body.start_urls) body.start_urls = [];
      try {
        const job = await post("/api/v1/jobs", body);
        location.hash = `#/jobs/${job.id}`;
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        const name = (e.field || "").split(/[[.]/)[0];
        const target = all.find((f) => f.arg.name === name);
        if (target) {
          target.error.textContent = e.message;
          target.input.setAttribute("aria-invalid", "true");
          target.input.focus();
        } else if (name === "spider") {
          spiderError.textContent = e.message;
        } else {
          formError.textContent = e.message + (e.hint ? ` ${e.hint}` : "");
        }
      }
    });
    clear(box, form);
  })().catch((e) => clear(box, h("p", { class: "error", role: "alert" }, e.message)));
  return null;
}
