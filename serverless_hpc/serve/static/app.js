// serverless-hpc dashboard. Plain JavaScript, no dependencies, served by `shpc serve`.
// Every string from a user or a record reaches the page through textContent or an attribute
// set with setAttribute: never through innerHTML.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f5fae", "#d1495b", "#2a9d8f", "#e09f3e", "#6a4c93", "#3d405b", "#8ab17d"];
const ACTIVE = new Set(["starting", "running", "reporting", "stopping"]);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) {
    const err = new Error((body && body.error) || `HTTP ${response.status}`);
    err.status = response.status; err.body = body;
    throw err;
  }
  return body;
}

function when(t) {
  return t ? new Date(t * 1000).toLocaleString() : "";
}

function badge(status) {
  return el("span", { class: `badge st-${status}`, "data-status": status, text: status });
}

function showError(container, err) {
  container.replaceChildren(el("p", { class: "error", role: "alert", text: err.message || err }));
}

// ---- runs list ------------------------------------------------------------------------

async function pageRuns(main) {
  const data = await api("/api/runs");
  const compare = el("button", { type: "button", class: "secondary", disabled: true,
                                 text: "Compare the two selected" });
  const picked = [];
  compare.addEventListener("click", () => {
    location.href = `/compare?base=${encodeURIComponent(picked[0])}&new=${encodeURIComponent(picked[1])}`;
  });
  const rows = data.runs.map((run) => {
    const box = el("input", { type: "checkbox", "aria-label": `select ${run.id}`, value: run.id });
    box.addEventListener("change", () => {
      const i = picked.indexOf(run.id);
      if (box.checked && i < 0) picked.push(run.id);
      if (!box.checked && i >= 0) picked.splice(i, 1);
      compare.disabled = picked.length !== 2;
    });
    return el("tr", { "data-run": run.id },
      el("td", {}, box),
      el("td", {}, el("a", { href: `/runs/${encodeURIComponent(run.id)}`, text: run.id })),
      el("td", {}, badge(run.status), run.source === "terminal" ? el("div", { class: "muted", text: "terminal" }) : null),
      el("td", { text: run.targets.join(", ") }),
      el("td", { text: run.workloads.join(", ") }),
      // a finished run's verdict (functions or a VM, per workload), else its headline
      el("td", {}, el("ul", { class: (run.verdict || []).length ? "headline verdict" : "headline" },
        ((run.verdict || []).length ? run.verdict : run.headline).map((h) => el("li", { text: h })))),
      el("td", { text: when(run.started) }));
  });
  main.replaceChildren(
    el("h1", { text: "Runs" }),
    el("p", {}, el("a", { href: "/new", text: "Start a run" }), " · ", compare),
    rows.length
      ? el("table", { id: "runs" },
          el("thead", {}, el("tr", {}, ["", "run", "status", "targets", "workloads", "answer", "started"].map((h) => el("th", { text: h })))),
          el("tbody", {}, rows))
      : el("p", { class: "muted", text: "No runs in the results directory yet." }));
  // Runs that are going get their status pushed (one event stream each, closed at the end).
  // At most 4: a browser keeps 6 connections per server, and the page needs some too.
  for (const run of data.runs.filter((r) => ACTIVE.has(r.status)).slice(0, 4)) {
    const stream = new EventSource(`/api/runs/${encodeURIComponent(run.id)}/events`);
    const update = (status, done, planned) => {
      const row = document.querySelector(`tr[data-run="${CSS.escape(run.id)}"] td:nth-child(3)`);
      if (!row) return;
      const note = planned ? ` ${done}/${planned}` : "";
      row.replaceChildren(badge(status), el("span", { class: "muted", text: note }));
    };
    let last = { status: run.status, done: 0, planned: null };
    stream.addEventListener("status", (ev) => {
      const info = JSON.parse(ev.data);
      last = { status: info.status, done: info.done, planned: info.planned ?? last.planned };
      update(last.status, last.done, last.planned);
    });
    stream.addEventListener("records", (ev) => {
      last.done = JSON.parse(ev.data).done;
      update(last.status, last.done, last.planned);
    });
    stream.addEventListener("end", (ev) => { stream.close(); update(JSON.parse(ev.data).status, last.done, null); });
  }
}

// ---- the form -------------------------------------------------------------------------

function choices(name, items, checked) {
  return el("div", { class: "choices", id: `f-${name}`, role: "group" },
    items.map((it) => {
      const value = typeof it === "string" ? it : it.name;
      const title = typeof it === "string" ? null : it.summary;
      return el("label", { title },
        el("input", { type: "checkbox", name, value, checked: checked.includes(value) }), ` ${value}`);
    }));
}

function field(label, name, control, hint) {
  return [el("label", { class: "field", for: `f-${name}`, text: label }), control,
          hint ? el("div", { class: "hint", text: hint }) : null];
}

function input(name, type, value, extra) {
  return el("input", Object.assign({ id: `f-${name}`, name, type, value: value ?? "" }, extra || {}));
}

async function pageNew(main) {
  const opts = await api("/api/options");
  const d = opts.defaults;
  const message = el("div", { id: "form-message" });
  const form = el("form", { class: "run", id: "run-form", novalidate: true },
    field("Targets", "targets", choices("targets", opts.targets, d.targets)),
    field("Workloads", "workloads", choices("workloads", opts.workloads, d.workloads),
          opts.workloads.map((w) => `${w.name}: ${w.summary}`).join(" · ")),
    field("Shards", "shards", input("shards", "text", d.shards.join(",")), "fan-out levels, comma-separated"),
    field("Repeats", "repeats", input("repeats", "number", d.repeats, { min: 1 })),
    field("Modes", "modes", choices("modes", ["natural", "cold"], d.modes)),
    field("Cold repeats", "cold_repeats", input("cold_repeats", "number", d.cold_repeats, { min: 1 })),
    ...opts.workload_options.map(workloadField),
    field("Memory (MB)", "memory_mb", input("memory_mb", "text", "", { placeholder: "target default" }), "one size, or several to sweep: 512,1024,1769"),
    field("Parameters", "params", el("textarea", { id: "f-params", name: "params", rows: 3,
          placeholder: "workload.key=value, one a line (e.g. dataproc.split=test)" })),
    el("span"), el("div", {}, el("button", { type: "submit", id: "start", text: "Start the run" })));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    form.querySelectorAll("[aria-invalid]").forEach((n) => n.removeAttribute("aria-invalid"));
    message.replaceChildren();
    let body;
    try { body = formBody(form, opts.workload_options); } catch (err) { showError(message, err); return; }
    const button = form.querySelector("#start");
    button.disabled = true;
    try {
      const made = await api("/api/runs", { method: "POST", body: JSON.stringify(body),
                                            headers: { "content-type": "application/json" } });
      location.href = made.url;
    } catch (err) {
      showError(message, err);
      const name = err.body && err.body.field;
      const bad = name && document.getElementById(`f-${name}`);
      if (bad) { bad.setAttribute("aria-invalid", "true"); bad.focus(); }
      if (err.status === 409 && err.body.run_id) {
        message.append(el("p", {}, el("a", { href: `/runs/${encodeURIComponent(err.body.run_id)}`,
                                              text: `Watch run ${err.body.run_id}` })));
      }
      button.disabled = false;
    }
  });
  main.replaceChildren(el("h1", { text: "Start a run" }),
    el("p", { class: "muted", text: "The run is a shpc bench run: same results directory, records and report as the terminal's." }),
    message, form);
}

function workloadField(o) {
  // One field per option a workload's spec declares with a flag (see /api/options).
  const hint = `${o.help} (${o.workloads.map((w) => `${w}.${o.param}`).join(", ")})`;
  const placeholder = o.default === null ? "workload default" : String(o.default);
  let control;
  if (o.choices.length) {
    control = el("select", { id: `f-${o.name}`, name: o.name },
      [el("option", { value: "", text: `(${placeholder})` }), ...o.choices.map((c) => el("option", { value: c, text: c }))]);
  } else if (o.kind === "bool") {
    control = el("select", { id: `f-${o.name}`, name: o.name },
      ["", "true", "false"].map((c) => el("option", { value: c, text: c || `(${placeholder})` })));
  } else {
    const extra = { placeholder };
    if (o.min !== null) extra.min = o.min;
    if (o.max !== null) extra.max = o.max;
    if (o.kind === "float") extra.step = "any";
    control = input(o.name, o.kind === "choice" ? "text" : "number", "", extra);
  }
  return field(o.label, o.name, control, hint);
}

function workloadValue(form, o) {
  const raw = form.elements[o.name].value.trim();
  if (raw === "") return null;
  if (o.kind === "bool") return raw === "true";
  if (o.kind === "choice") return raw;
  const n = Number(raw);
  if (Number.isNaN(n) || (o.kind === "int" && !Number.isInteger(n))) {
    form.elements[o.name].setAttribute("aria-invalid", "true");
    throw new Error(`${o.name}: expected ${o.kind === "int" ? "an integer" : "a number"}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function formBody(form, options) {
  const checked = (name) => [...form.querySelectorAll(`input[name=${name}]:checked`)].map((n) => n.value);
  const num = (name) => {
    const raw = form.elements[name].value.trim();
    if (raw === "") return null;
    const n = Number(raw);
    if (!Number.isInteger(n)) {
      const err = new Error(`${name}: expected an integer, got ${JSON.stringify(raw)}`);
      form.elements[name].setAttribute("aria-invalid", "true");
      throw err;
    }
    return n;
  };
  const params = {};
  for (const line of form.elements.params.value.split(/\n/)) {
    const text = line.trim();
    if (!text) continue;
    const m = /^([^.=\s]+)\.([^=\s]+)=(.*)$/.exec(text);
    if (!m) throw new Error(`params: expected workload.key=value, got ${JSON.stringify(text)}`);
    let value = m[3];
    try { value = JSON.parse(value); } catch (e) { /* a plain string, as on the command line */ }
    (params[m[1]] = params[m[1]] || {})[m[2]] = value;
  }
  const body = {
    targets: checked("targets"), workloads: checked("workloads"),
    shards: form.elements.shards.value, repeats: num("repeats"), modes: checked("modes"),
    cold_repeats: num("cold_repeats"), memory_mb: form.elements.memory_mb.value,
    params,
  };
  for (const o of options) body[o.name] = workloadValue(form, o);
  return body;
}

// ---- a run ----------------------------------------------------------------------------

class FanoutChart {
  // Client latency by fan-out level: one panel per workload, each with its own latency axis
  // (a training's minutes never flatten a classification's milliseconds); one point per
  // invocation, a bar at each target's median, a colour per target across the panels.
  constructor() {
    this.points = [];
    this.node = svg("svg", { class: "chart", id: "chart", viewBox: "0 0 760 220", role: "img",
                             "aria-label": "client latency by fan-out, one panel per workload" });
    this.legend = el("div", { class: "legend" });
    this.pending = false;
  }
  add(records) {
    for (const r of records) {
      if (r.ok && typeof r.client_ms === "number") this.points.push(r);
    }
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }
  }
  static tick(v) {
    if (v >= 10000) return `${(v / 1000).toFixed(0)} s`;
    if (v >= 1000) return `${(v / 1000).toFixed(1)} s`;
    return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ms`;
  }
  draw() {
    const W = 760, PH = 220, L = 64, R = 16, T = 24, B = 40;
    const workloads = [...new Set(this.points.map((p) => p.workload))].sort();
    const targets = [...new Set(this.points.map((p) => p.target))].sort();
    const panels = workloads.length ? workloads : [null];
    this.node.setAttribute("viewBox", `0 0 ${W} ${PH * panels.length}`);
    const kids = [];
    panels.forEach((workload, k) => {
      const top = k * PH;
      const pts = this.points.filter((p) => p.workload === workload);
      const levels = [...new Set(pts.map((p) => p.shards))].sort((a, b) => a - b);
      const ymax = Math.max(1, ...pts.map((p) => p.client_ms)) * 1.1;
      const x = (lvl, s) => L + (levels.indexOf(lvl) + 0.5) * (W - L - R) / Math.max(1, levels.length)
                            + (s - (targets.length - 1) / 2) * 14;
      const y = (v) => top + PH - B - (v / ymax) * (PH - T - B);
      const panel = svg("g", { class: "panel", "data-workload": workload ?? "" });
      const add = (...nodes) => nodes.forEach((n) => panel.append(n));
      add(svg("text", { x: L, y: top + 14, class: "panel-title" },
              workload === null ? "waiting for records" : `${workload}: client latency by fan-out`));
      for (let i = 0; i <= 4; i++) {
        const v = (ymax * i) / 4;
        add(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
            svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, FanoutChart.tick(v)));
      }
      add(svg("line", { class: "axis", x1: L, x2: L, y1: top + T, y2: top + PH - B }),
          svg("line", { class: "axis", x1: L, x2: W - R, y1: top + PH - B, y2: top + PH - B }),
          svg("text", { x: (L + W - R) / 2, y: top + PH - 6, "text-anchor": "middle" }, "shards (fan-out)"));
      for (const lvl of levels) {
        add(svg("text", { x: x(lvl, (targets.length - 1) / 2), y: top + PH - B + 16, "text-anchor": "middle" }, lvl));
      }
      targets.forEach((target, s) => {
        const color = PALETTE[s % PALETTE.length];
        for (const lvl of levels) {
          const vals = pts.filter((p) => p.target === target && p.shards === lvl)
            .map((p) => p.client_ms).sort((a, b) => a - b);
          vals.forEach((v) => add(svg("circle", { cx: x(lvl, s), cy: y(v), r: 3, fill: color, "fill-opacity": 0.55 })));
          if (vals.length) {
            const m = vals.length % 2 ? vals[(vals.length - 1) / 2] : (vals[vals.length / 2 - 1] + vals[vals.length / 2]) / 2;
            add(svg("line", { x1: x(lvl, s) - 6, x2: x(lvl, s) + 6, y1: y(m), y2: y(m), stroke: color, "stroke-width": 3 }));
          }
        }
      });
      kids.push(panel);
    });
    this.node.replaceChildren(...kids);
    this.node.setAttribute("data-points", String(this.points.length));
    this.node.setAttribute("data-panels", String(workloads.length));
    this.legend.replaceChildren(...targets.map((name, s) => {
      const dot = el("i"); dot.style.background = PALETTE[s % PALETTE.length];
      return el("span", {}, dot, name);
    }));
  }
}

async function pageRun(main) {
  const id = decodeURIComponent(location.pathname.split("/")[2] || "");
  let detail;
  try { detail = await api(`/api/runs/${encodeURIComponent(id)}`); } catch (err) { showError(main, err); return; }
  const status = el("span", { id: "status" });
  const bar = el("progress", { id: "bar", max: 1, value: 0 });
  const counts = el("span", { id: "counts" });
  const latest = el("div", { id: "latest", class: "muted" });
  const lastError = el("div", { id: "last-error" });
  const cancel = el("button", { type: "button", id: "cancel", class: "secondary", text: "Cancel the run" });
  const reportBox = el("div", { id: "report" });
  const reportFrame = el("section", { id: "report-section" });
  const notes = el("div", { id: "notes" });
  const headline = el("ul", { class: "headline", id: "headline" });
  const headlineBox = el("section", {}, el("h2", { text: "Headline" }), headline);
  const chart = new FanoutChart();
  const state = { done: 0, failed: 0, planned: detail.planned, status: detail.status };
  const facts = el("dl", { class: "facts", id: "facts" });
  function renderFacts(d) {
    const cfg = d.config || {};
    const list = (v) => (v || []).join(", ");
    facts.replaceChildren(...[
      ["targets", list(d.targets)], ["workloads", list(d.workloads)], ["shards", list(cfg.shards)],
      ["repeats", cfg.repeats], ["modes", list(cfg.modes)], ["started", when(d.started)],
      ["command", d.command || "(started from a terminal)"],
    ].flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v ?? "" })]));
  }
  renderFacts(detail);

  function render(info) {
    Object.assign(state, Object.fromEntries(Object.entries(info).filter(([, v]) => v !== undefined && v !== null)));
    status.replaceChildren(badge(state.status));
    const planned = state.planned;
    const pct = planned ? Math.min(100, Math.floor((100 * state.done) / planned)) : null;
    bar.max = planned || 1;
    bar.value = planned ? Math.min(state.done, planned) : 0;
    counts.textContent = `${state.done} of ${planned ?? "?"} invocations` +
      (pct !== null ? ` (${pct}%)` : "") + `, ${state.failed} failed`;
    counts.setAttribute("data-pct", pct ?? "");
    cancel.hidden = !ACTIVE.has(state.status) || detail.source !== "serve";
    cancel.disabled = state.status === "stopping";
    if (info.headline) headline.replaceChildren(...info.headline.map((h) => el("li", { text: h })));
    const errs = (info.errors || []).concat((info.skipped || []).map((s) => `skipped ${s.workload} on ${s.target}: ${s.reason}`));
    if (info.errors || info.skipped) notes.replaceChildren(...errs.map((e) => el("p", { class: "error", text: e })));
    if (info.report && !reportFrame.querySelector("iframe")) {
      const href = `/runs/${encodeURIComponent(id)}/report`;
      reportBox.replaceChildren(el("a", { id: "report-link", href, text: "Open the report" }));
      // sandboxed: the report runs no script and gets no access to this page
      reportFrame.replaceChildren(el("h2", { text: "Report" }),
        el("iframe", { id: "report-frame", class: "report", src: href, sandbox: "", title: "report" }));
    } else if (["cancelled", "aborted", "interrupted"].includes(state.status)) {
      reportBox.replaceChildren(el("p", { class: "notice", id: "no-report",
        text: `No report: the run stopped early. Its records are kept; shpc report <results>/${id} builds one from them.` }));
    }
    headlineBox.hidden = !headline.childElementCount;
  }
  function showLatest(r) {
    if (r) latest.textContent = `latest batch: ${r.target} ${r.workload} × ${r.shards} shard(s), ${r.mode}, repeat ${r.repeat}`;
  }
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try { render(await api(`/api/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" })); }
    catch (err) { showError(notes, err); cancel.disabled = false; }
  });
  main.replaceChildren(
    el("h1", {}, "Run ", el("code", { text: id }), " ", status),
    el("div", { class: "progress" }, bar, counts, cancel), latest, lastError, notes, reportBox,
    el("h2", { text: "Latency by fan-out (live)" }), chart.legend, chart.node,
    headlineBox,
    el("h2", { text: "Plan" }), facts, reportFrame);
  render(Object.assign({}, detail, { done: 0, failed: 0 }));
  chart.draw();

  const events = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
  events.addEventListener("status", async (ev) => {
    const info = JSON.parse(ev.data);
    render(info);
    if (!detail.config && info.status !== "starting") {
      detail = await api(`/api/runs/${encodeURIComponent(id)}`);
      renderFacts(detail);
    }
  });
  events.addEventListener("records", (ev) => {
    const data = JSON.parse(ev.data);
    chart.add(data.records);
    showLatest(data.records[data.records.length - 1]);
    const bad = data.records.filter((r) => !r.ok).pop();
    if (bad) {
      lastError.replaceChildren(el("p", { class: "error",
        text: `latest failure: ${bad.target} ${bad.workload} shard ${bad.shard} of ${bad.shards}: ${bad.error || "no message"}` }));
    }
    render({ done: data.done, failed: data.failed });
    document.body.setAttribute("data-updated", String(Date.now()));
  });
  events.addEventListener("end", async (ev) => {
    events.close();
    detail = await api(`/api/runs/${encodeURIComponent(id)}`);
    renderFacts(detail);
    render(detail);
    document.body.setAttribute("data-ended", JSON.parse(ev.data).status);
  });
}

// ---- compare --------------------------------------------------------------------------

function pct(v) {
  return typeof v === "number" ? `${v > 0 ? "+" : ""}${v.toFixed(1)}%` : "";
}

function ms(v) {
  return typeof v === "number" ? v.toFixed(1) : "";
}

async function pageCompare(main) {
  const params = new URLSearchParams(location.search);
  const data = await api("/api/runs");
  const pick = (name, value) => el("label", {}, `${name} `,
    el("select", { id: `pick-${name}`, name },
      el("option", { value: "", text: "(choose a run)" }),
      data.runs.map((r) => el("option", { value: r.id, selected: r.id === value, text: `${r.id} (${r.status})` }))));
  const result = el("div", { id: "result" });
  const go = el("button", { type: "button", id: "go", text: "Compare" });
  main.replaceChildren(el("h1", { text: "Compare two runs" }),
    el("div", { class: "pick" }, pick("base", params.get("base")), pick("new", params.get("new")), go), result);
  async function run() {
    const base = document.getElementById("pick-base").value;
    const neu = document.getElementById("pick-new").value;
    if (!base || !neu) { result.replaceChildren(el("p", { class: "muted", text: "Choose two runs." })); return; }
    history.replaceState(null, "", `/compare?base=${encodeURIComponent(base)}&new=${encodeURIComponent(neu)}`);
    result.replaceChildren(el("p", { class: "muted", text: "Comparing…" }));
    try {
      renderComparison(result, await api(`/api/compare?base=${encodeURIComponent(base)}&new=${encodeURIComponent(neu)}`));
    } catch (err) { showError(result, err); }
  }
  go.addEventListener("click", run);
  if (params.get("base") && params.get("new")) await run();
}

function renderComparison(result, cmp) {
  const rows = cmp.rows || [];
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.key || {})))];
  const table = el("table", { id: "comparison" },
    el("thead", {}, el("tr", {}, keys.map((k) => el("th", { text: k })),
      ["base median ms", "new median ms", "change", "95% CI", "verdict"].map((h) => el("th", { class: "num", text: h })))),
    el("tbody", {}, rows.map((r) => {
      const cls = /regress|slower|worse/i.test(r.verdict || "") ? "worse" : /improv|faster|better/i.test(r.verdict || "") ? "better" : "";
      return el("tr", {}, keys.map((k) => el("td", { text: (r.key || {})[k] ?? "" })),
        el("td", { class: "num", text: ms(r.base_median_ms) }), el("td", { class: "num", text: ms(r.new_median_ms) }),
        el("td", { class: "num", text: pct(r.change_pct) }),
        el("td", { class: "num", text: typeof r.ci_low_pct === "number" ? `${pct(r.ci_low_pct)} … ${pct(r.ci_high_pct)}` : "" }),
        el("td", { class: `num ${cls}`, text: r.verdict ?? "" }));
    })));
  const only = (label, list) => (list && list.length
    ? el("p", { class: "muted", text: `only in ${label}: ${list.map((k) => (typeof k === "object" ? Object.values(k).join(" ") : k)).join("; ")}` })
    : null);
  result.replaceChildren(...[
    el("p", { class: "muted", text: `base ${cmp.base} · new ${cmp.new}${cmp.method ? ` · ${cmp.method}` : ""}` }),
    rows.length ? table : el("p", { class: "notice", text: "No comparable rows." }),
    only("base", cmp.only_in_base), only("new", cmp.only_in_new)].filter((n) => n));
}

// ---- dispatch -------------------------------------------------------------------------

const PAGES = { runs: pageRuns, new: pageNew, run: pageRun, compare: pageCompare };

document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("app");
  const page = PAGES[document.body.dataset.page];
  if (page) page(main).catch((err) => showError(main, err));
});
