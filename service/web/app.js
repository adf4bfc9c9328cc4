// metarec web page: plain JavaScript over the /v1 REST API with the user's bearer key.
// Nothing is fetched before a key is given; the key lives in sessionStorage (this tab only).
// Every value from the API is put into the page with textContent, never as HTML.
"use strict";

const KEY_STORE = "metarec.apiKey";
const POLL_MS = 750;
const JOB_PAGE = 20;
const ACTIVE = new Set(["queued", "running"]);
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  key: null, portfolio: null, datasets: [], recommendation: null, jobId: null, pollTimer: null, blobUrls: [],
  generation: 0,  // bumped on lock: answers to requests made under an older key are dropped
};

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const fmt = (x, digits = 3) => (isNum(x) ? x.toFixed(digits) : "—");
const pct = (x) => (isNum(x) ? `${(100 * x).toFixed(1)} %` : "—");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

// ------------------------------------------------------------------------------------------ API

async function api(path, options = {}) {
  if (!state.key) throw new ApiError(401, "unauthorized", "no API key");
  const generation = state.generation;
  const headers = { Authorization: `Bearer ${state.key}`, ...(options.headers || {}) };
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { method: options.method || "GET", headers, body, cache: "no-store" });
  if (generation !== state.generation) throw new ApiError(0, "stale", "the key changed meanwhile");
  if (!response.ok) {
    let code = "http_error";
    let message = `${response.status} ${response.statusText}`;
    try {
      const err = (await response.json()).error;
      code = err.code || code;
      message = err.message || message;
    } catch (_) { /* not the JSON envelope: keep the status line */ }
    if (response.status === 401) lock(`The API refused the key: ${message}`);
    throw new ApiError(response.status, code, message);
  }
  return options.raw ? response : response.json();
}

async function blobUrl(path) {
  const response = await api(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  state.blobUrls.push(url);
  return url;
}

function report(error) {
  if (error instanceof ApiError && (error.status === 401 || error.code === "stale")) return;
  showMessage(error instanceof ApiError ? `${error.message} (${error.status} ${error.code})` : String(error));
}

// ------------------------------------------------------------------------------------------ key

function lock(reason) {
  state.generation += 1;
  state.key = null;
  sessionStorage.removeItem(KEY_STORE);
  clearTimeout(state.pollTimer);
  for (const url of state.blobUrls) URL.revokeObjectURL(url);
  Object.assign(state, { portfolio: null, datasets: [], recommendation: null, jobId: null, blobUrls: [] });
  for (const id of ["figures", "reduced-portfolio", "portfolio-facts", "provenance", "rec-result", "dataset-detail",
    "job-facts", "job-links", "job-curve", "job-id", "job-status", "portfolio-version", "who"]) $(id).replaceChildren();
  $("ft-submit").disabled = true;
  $("ft-what").textContent = "make a recommendation first";
  for (const table of ["entries", "dataset-table", "job-table"]) $(table).tBodies[0].replaceChildren();
  $("rec-dataset").replaceChildren();
  $("job-detail").hidden = true;
  $("app").hidden = true;
  $("locked").hidden = false;
  $("key-form").hidden = false;
  $("key-forget").hidden = true;
  showMessage(reason || "");
}

async function unlock(key) {
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  try {
    await loadPortfolio();  // the first call also checks the key
  } catch (error) {
    if (!(error instanceof ApiError)) {  // not an answer from the API: a key that cannot be sent, no connection
      lock(`Could not use this key: ${error.message || error}`);
      return;
    }
    report(error);  // e.g. 503 while no portfolio is loaded: datasets and jobs still work
    if (!state.key) return;
  }
  $("locked").hidden = true;
  $("key-form").hidden = true;
  $("key-forget").hidden = false;
  $("app").hidden = false;
  $("who").textContent = "key accepted";
  await Promise.all([loadDatasets(), loadJobs(), loadCapabilities()]).catch(report);
}

// ------------------------------------------------------------------------------------------ portfolio

function facts(target, pairs) {
  target.replaceChildren(...pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [
    el("dt", {}, k), el("dd", {}, v === null ? "—" : v)]));
}

async function loadPortfolio() {
  const p = await api("v1/portfolio");
  state.portfolio = p;
  $("portfolio-version").textContent = p.version;
  const spec = p.fingerprint_spec || {};
  const prov = p.provenance || {};
  facts($("portfolio-facts"), [
    ["version", p.version], ["known datasets", String((p.entries || []).length)],
    ["matchers", (p.matchers || []).join(", ")],
    ["fingerprints", `${spec.backbone || "?"} · ${spec.weights || "?"} · ${spec.resolution || "?"} px`],
    ["created", prov.created_at || null], ["metarec version", prov.metarec_version || null],
  ]);
  $("provenance").textContent = JSON.stringify(prov, null, 2);
  $("reduced-portfolio").replaceChildren(...(p.reduced_portfolio || []).map((name) => el("li", {}, name)));
  $("entries").tBodies[0].replaceChildren(...(p.entries || []).map((e) => el("tr", {},
    el("td", {}, e.dataset), el("td", {}, e.configuration?.backbone ?? "—"),
    el("td", {}, e.configuration?.pretrained ?? "—"), el("td", { class: "num" }, fmt(e.score, 4)),
    el("td", { class: "num" }, `${e.budget} ${e.budget_kind}`))));
  const matcher = $("rec-matcher");
  matcher.replaceChildren(el("option", { value: "" }, "service default"),
    ...(p.matchers || []).map((m) => el("option", { value: m }, m)));
  await loadFigures();
}

async function loadFigures() {
  const list = await api("v1/portfolio/figures");
  const figures = await Promise.all(list.items.map(async (f) => {
    const img = el("img", { id: `fig-${f.name.replace(/\.png$/, "")}`, alt: f.title, src: await blobUrl(f.url.replace(/^\//, "")) });
    return el("figure", {}, img, el("figcaption", {}, f.title));
  }));
  $("figures").replaceChildren(...(figures.length ? figures : [el("p", { class: "muted" },
    "This portfolio was saved without figures.")]));
}

// ------------------------------------------------------------------------------------------ datasets

async function loadDatasets() {
  const list = await api("v1/datasets?limit=200");
  state.datasets = list.items;
  $("dataset-table").tBodies[0].replaceChildren(...list.items.map((d) => {
    const s = d.summary || {};
    return el("tr", { "data-id": d.id, class: "clickable", onclick: () => selectDataset(d.id) },
      el("td", {}, d.name), el("td", { class: "mono" }, d.id), el("td", {}, s.modality || "image"),
      el("td", { class: "num" }, s.n_items ?? "—"), el("td", { class: "num" }, s.n_classes ?? "—"),
      el("td", { class: "num" }, `${fmt(s.mean_height, 0)}×${fmt(s.mean_width, 0)}`),
      el("td", { class: "num" }, s.skipped ?? 0));
  }));
  const select = $("rec-dataset");
  const previous = select.value;
  select.replaceChildren(...list.items.map((d) => el("option", { value: d.id }, `${d.name} (${d.id})`)));
  if (previous && list.items.some((d) => d.id === previous)) select.value = previous;
  $("rec-submit").disabled = !list.items.length;
}

function selectDataset(id) {
  const d = state.datasets.find((x) => x.id === id);
  if (!d) return;
  $("rec-dataset").value = id;
  for (const row of $("dataset-table").tBodies[0].rows) row.classList.toggle("selected", row.dataset.id === id);
  const s = d.summary || {};
  const skipped = s.skipped_files || [];
  const classes = Object.entries(s.class_counts || {}).map(([c, n]) => `${c}: ${n}`).join(", ");
  $("dataset-detail").replaceChildren(
    el("h3", {}, `${d.name} `, el("span", { class: "tag" }, d.source)),
    el("dl", { class: "facts" }, ...[["layout", s.layout], ["items", s.n_items], ["classes", `${s.n_classes} (${classes})`],
      ["splits", JSON.stringify(s.split_counts || {})], ["height", `${fmt(s.min_height, 0)}–${fmt(s.max_height, 0)}`],
      ["width", `${fmt(s.min_width, 0)}–${fmt(s.max_width, 0)}`], ["channels", s.channels],
      ["content hash", (s.content_hash || "").slice(0, 16)], ["registered", when(d.created_at)]]
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")])),
    el("h4", {}, `Skipped files (${skipped.length})`),
    skipped.length
      ? el("table", { id: "skipped-files" }, el("thead", {}, el("tr", {}, el("th", {}, "file"), el("th", {}, "reason"))),
        el("tbody", {}, ...skipped.map((f) => el("tr", {}, el("td", { class: "mono" }, f.path), el("td", {}, f.reason)))))
      : el("p", { class: "muted" }, "none"));
}

async function registerDataset(event) {
  event.preventDefault();
  showMessage("");
  const button = $("register-submit");
  button.disabled = true;
  try {
    const d = await api("v1/datasets", { method: "POST", json: { path: $("register-path").value.trim() } });
    await loadDatasets();
    selectDataset(d.id);
    showMessage(`registered ${d.name} (${d.id})`, "info");
  } catch (error) {
    report(error);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------------------------------ recommendation

const CONFIG_COLUMNS = ["backbone", "pretrained", "strategy", "batch_size", "lr", "optimizer"];

function configCell(config) {
  const c = config || {};
  return el("td", { title: JSON.stringify(c) }, CONFIG_COLUMNS.filter((k) => c[k] !== undefined)
    .map((k) => `${k}=${isNum(c[k]) && !Number.isInteger(c[k]) ? c[k].toPrecision(3) : c[k]}`).join(" · "));
}

// a candidate's cost: the selection layer's {params, flops, latency_ms, device} object, a plain number, or nothing
function costText(cost) {
  if (isNum(cost)) return fmt(cost, 2);
  if (!cost || typeof cost !== "object") return "—";
  const parts = [];
  if (isNum(cost.params)) parts.push(`${(cost.params / 1e6).toFixed(2)} M params`);
  if (isNum(cost.flops)) parts.push(`${(cost.flops / 1e9).toFixed(2)} GFLOPs`);
  if (isNum(cost.latency_ms)) parts.push(`${cost.latency_ms.toFixed(1)} ms/image`);
  return parts.join(" · ") || "—";
}

function bar(value) {
  return el("meter", { min: 0, max: 1, value: isNum(value) ? Math.max(0, Math.min(1, value)) : 0 });
}

function renderRecommendation(r) {
  const fallback = r.fallback && typeof r.fallback === "object" ? r.fallback : null;
  const parts = [];
  if (fallback && fallback.used) {
    parts.push(el("p", { id: "rec-fallback", class: "warning" },
      `Fallback used: ${fallback.reason || "no reason given"}`));
  }
  const pairs = [["id", r.id], ["dataset", r.dataset_id], ["best match", r.best_match],
    ["configuration of", r.incumbent_of], ["matcher", r.matcher], ["portfolio", r.portfolio_version],
    ["images fingerprinted", r.n_images], ["answered in", isNum(r.elapsed_ms) ? `${fmt(r.elapsed_ms, 0)} ms` : undefined]];
  if (r.policy !== undefined) pairs.push(["policy", r.policy]);
  if (r.evidence !== undefined) pairs.push(["neighbours by", el("span", { id: "rec-evidence-used" }, r.evidence)]);
  if (r.time_budget_s !== undefined) pairs.push(["time budget", isNum(r.time_budget_s) ? `${r.time_budget_s} s` : "—"]);
  if (r.novelty !== undefined) pairs.push(["novelty", el("span", { id: "rec-novelty" }, fmt(r.novelty, 3), " ", bar(r.novelty))]);
  if (fallback) pairs.push(["fallback", fallback.used ? `used: ${fallback.reason || ""}` : "not used"]);
  if (r.restricted_to_reduced) pairs.push(["restricted to", "the reduced portfolio"]);
  const summary = el("div", {}, el("h3", {}, "Summary"), el("dl", { class: "facts" }, ...pairs
    .filter(([, v]) => v !== undefined).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")])));
  const configuration = el("div", {}, el("h3", {}, "Configuration"), el("table", { id: "rec-configuration", class: "kv" },
    el("tbody", {}, ...Object.entries(r.configuration || {}).map(([k, v]) =>
      el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : v))))));
  const withDistance = (r.neighbors || []).some((n) => isNum(n.distance));
  const neighbours = el("div", {}, el("h3", {}, "Neighbours"), el("table", { id: "rec-neighbors" },
    el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "known dataset"), el("th", {}, "score"), el("th", {}, ""),
      withDistance ? el("th", {}, "distance") : null)),
    el("tbody", {}, ...(r.neighbors || []).map((n, i) => el("tr", {}, el("td", { class: "num" }, i + 1),
      el("td", {}, n.dataset), el("td", { class: "num" }, fmt(n.score, 4)), el("td", {}, bar(n.score)),
      withDistance ? el("td", { class: "num" }, fmt(n.distance, 3)) : null)))));
  parts.push(el("div", { class: "columns3" }, summary, neighbours, configuration));
  if (Array.isArray(r.candidates)) {
    const head = ["#", "candidate", "configuration", "source", "rank score", "predicted ALC", "cost", "extrapolated"];
    parts.push(el("h3", {}, `Candidates (${r.candidates.length})`), el("table", { id: "rec-candidates" },
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...r.candidates.map((c, i) => el("tr", {}, el("td", { class: "num" }, i + 1),
        el("td", {}, [c.id, c.dataset ? `(${c.dataset})` : null].filter(Boolean).join(" ") || "—"),
        configCell(c.configuration), el("td", {}, c.source ?? "—"),
        el("td", { class: "num", title: "what the policy ranks by" }, isNum(c.rank_score) ? fmt(c.rank_score, 4) : "—"),
        el("td", { class: "num" }, fmt(c.predicted_score, 4)),
        el("td", { class: "num", title: c.cost && c.cost.device ? `measured on ${c.cost.device}` : null },
          costText(c.cost)),
        el("td", {}, typeof c.extrapolated === "boolean" ? (c.extrapolated ? "yes" : "no") : "—"))))));
  }
  $("rec-result").replaceChildren(...parts);
}

// Which recommendation options this server takes (its public OpenAPI document): policy, evidence and time
// budget appear only where the request schema has them.
async function loadCapabilities() {
  let props = {};
  let schemas = {};
  try {
    const doc = await (await fetch("openapi.json", { cache: "no-store" })).json();
    schemas = doc.components?.schemas || {};
    props = schemas.RecommendationRequest?.properties || {};
  } catch (_) { /* an older or unreachable document: the basic form only */ }
  const resolve = (s) => (s && s.$ref ? schemas[s.$ref.split("/").pop()] || {} : s || {});
  const choices = [props.policy, ...(props.policy?.anyOf || [])].map(resolve).flatMap((s) => s.enum || []);
  $("rec-policy").replaceChildren(el("option", { value: "" }, "portfolio default"),
    ...choices.map((c) => el("option", { value: c }, c)));
  $("rec-policy-field").hidden = !choices.length;
  const evidence = [props.evidence, ...(props.evidence?.anyOf || [])].map(resolve).flatMap((s) => s.enum || []);
  $("rec-evidence").replaceChildren(el("option", { value: "" }, "default"),
    ...evidence.map((c) => el("option", { value: c }, c)));
  $("rec-evidence-field").hidden = !evidence.length;
  $("rec-budget-field").hidden = !props.time_budget_s;
}

async function recommend(event) {
  event.preventDefault();
  showMessage("");
  const button = $("rec-submit");
  button.disabled = true;
  $("rec-result").replaceChildren(el("p", { class: "muted" }, "fingerprinting and matching…"));
  try {
    const body = { dataset_id: $("rec-dataset").value, top_k: Number($("rec-topk").value) || 5,
      reduced: $("rec-reduced").checked };
    if ($("rec-matcher").value) body.matcher = $("rec-matcher").value;
    if (!$("rec-policy-field").hidden && $("rec-policy").value) body.policy = $("rec-policy").value;
    if (!$("rec-budget-field").hidden && $("rec-budget").value) body.time_budget_s = Number($("rec-budget").value);
    if (!$("rec-evidence-field").hidden && $("rec-evidence").value) body.evidence = $("rec-evidence").value;
    const r = await api("v1/recommendations", { method: "POST", json: body });
    state.recommendation = r;
    renderRecommendation(r);
    if (isNum(r.time_budget_s)) $("ft-budget").value = String(r.time_budget_s);  // the budget it was ranked for
    $("ft-submit").disabled = !r.dataset_id;
    const dataset = state.datasets.find((d) => d.id === r.dataset_id);
    $("ft-what").textContent = `${r.configuration?.backbone ?? "?"} (the configuration of ${r.incumbent_of ?? "?"}) ` +
      `on ${dataset ? dataset.name : r.dataset_id}`;
  } catch (error) {
    $("rec-result").replaceChildren();
    report(error);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------------------------------ jobs

async function loadJobs() {
  const list = await api(`v1/jobs?limit=${JOB_PAGE}`);
  $("job-table").tBodies[0].replaceChildren(...list.items.map((j) => el("tr",
    { "data-id": j.id, class: `clickable${j.id === state.jobId ? " selected" : ""}`, onclick: () => selectJob(j.id) },
    el("td", { class: "mono" }, j.id), el("td", {}, j.kind), el("td", {}, el("span", { class: `status ${j.status}` }, j.status)),
    el("td", { class: "num" }, pct(j.progress)), el("td", { class: "num" }, fmt(j.alc, 4)), el("td", {}, j.device ?? "—"),
    el("td", {}, when(j.created_at)))));
}

async function launchFinetune(event) {
  event.preventDefault();
  const r = state.recommendation;
  if (!r || !r.dataset_id) return;
  showMessage("");
  const button = $("ft-submit");
  button.disabled = true;
  try {
    const job = await api("v1/jobs", { method: "POST", json: { dataset_id: r.dataset_id, recommendation_id: r.id,
      budget_s: Number($("ft-budget").value) } });
    await selectJob(job.id);
  } catch (error) {
    report(error);
  } finally {
    button.disabled = false;
  }
}

async function selectJob(id) {
  clearTimeout(state.pollTimer);
  state.jobId = id;
  await pollJob();
}

async function pollJob() {
  const id = state.jobId;
  if (!id) return;
  try {
    const job = await api(`v1/jobs/${encodeURIComponent(id)}`);
    if (state.jobId !== id) return;
    renderJob(job);
    await loadJobs();
    if (ACTIVE.has(job.status)) state.pollTimer = setTimeout(pollJob, POLL_MS);
  } catch (error) {
    report(error);
    if (state.key && state.jobId === id) state.pollTimer = setTimeout(pollJob, 4 * POLL_MS);
  }
}

function renderJob(job) {
  $("job-detail").hidden = false;
  $("job-id").textContent = job.id;
  const status = $("job-status");
  status.textContent = job.status;
  status.className = `tag status ${job.status}`;
  const params = job.params || {};
  // a point repeated at the same step (the trainer reports its last point again when it ends) is drawn once
  const curve = (job.learning_curve || []).filter((p, i, all) => i === 0 || p.step !== all[i - 1].step);
  const last = curve[curve.length - 1];
  facts($("job-facts"), [
    ["dataset", params.dataset_name ? `${params.dataset_name} (${job.dataset_id})` : job.dataset_id],
    ["recommendation", job.recommendation_id], ["budget", isNum(params.budget_s) ? `${params.budget_s} s` : undefined],
    ["progress", pct(job.progress)], ["curve points", String(curve.length)],
    ["last NAUC / accuracy", last ? `${fmt(last.nauc)} / ${fmt(last.accuracy)}` : null],
    ["ALC", fmt(job.alc, 4)], ["device", job.device], ["attempts", String(job.attempts)],
    ["cancel", job.cancel_requested ? "requested: the run stops at its next step" : undefined],
    ["error", job.error || undefined],
  ]);
  drawCurve($("job-curve"), curve, params.budget_s);
  $("job-cancel").hidden = !ACTIVE.has(job.status) || job.cancel_requested;
  const links = [];
  if (job.kind === "finetune" && job.status === "succeeded") {
    links.push(el("button", { type: "button", onclick: () => download(`v1/jobs/${job.id}/model`, `${job.id}-model.pt`) },
      "Download model"), el("button", { type: "button", onclick: () => download(`v1/jobs/${job.id}/curve.png`,
      `${job.id}-curve.png`) }, "Download curve.png"));
  }
  $("job-links").replaceChildren(...links);
}

async function cancelJob() {
  if (!state.jobId) return;
  try {
    renderJob(await api(`v1/jobs/${encodeURIComponent(state.jobId)}`, { method: "DELETE" }));
  } catch (error) {
    report(error);
  }
}

async function download(path, filename) {
  try {
    const link = el("a", { href: await blobUrl(path), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    report(error);
  }
}

// NAUC and accuracy against seconds since the start; the x axis spans the budget so the curve grows rightwards.
function drawCurve(target, curve, budget) {
  const W = 640, H = 280, L = 48, R = 16, T = 16, B = 36;
  const tMax = Math.max(isNum(budget) ? budget : 0, ...curve.map((p) => p.t), 1e-3);
  const yMin = Math.min(0, ...curve.map((p) => p.nauc));
  const x = (t) => L + (W - L - R) * (t / tMax);
  const y = (v) => T + (H - T - B) * (1 - (v - yMin) / (1 - yMin || 1));
  const nodes = [svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "plot" })];
  for (const v of [yMin, 0, 0.5, 1].filter((v, i, a) => a.indexOf(v) === i)) {
    nodes.push(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
  }
  for (const t of [0, tMax / 2, tMax]) {
    nodes.push(svg("text", { x: x(t), y: H - B + 16, "text-anchor": "middle" }, `${t.toFixed(t < 10 ? 1 : 0)} s`));
  }
  for (const [key, cls] of [["nauc", "nauc"], ["accuracy", "accuracy"]]) {
    if (curve.length > 1) {
      nodes.push(svg("polyline", { class: `line ${cls}`, points: curve.map((p) => `${x(p.t)},${y(p[key])}`).join(" ") }));
    }
    for (const p of curve) nodes.push(svg("circle", { class: `pt ${cls}`, cx: x(p.t), cy: y(p[key]), r: 3.5 }));
  }
  nodes.push(svg("text", { x: L, y: H - 4, class: "legend nauc" }, "● NAUC"),
    svg("text", { x: L + 64, y: H - 4, class: "legend accuracy" }, "● accuracy"),
    svg("text", { x: W - R, y: H - 4, "text-anchor": "end", class: "muted" }, "seconds since start"));
  if (!curve.length) nodes.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no points yet"));
  target.replaceChildren(...nodes);
  target.setAttribute("data-points", String(curve.length));
}

// ------------------------------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    $("key-input").value = "";
    if (key) unlock(key);
  });
  $("key-forget").addEventListener("click", () => lock("Key forgotten."));
  $("register-form").addEventListener("submit", registerDataset);
  $("recommend-form").addEventListener("submit", recommend);
  $("finetune-form").addEventListener("submit", launchFinetune);
  $("job-cancel").addEventListener("click", cancelJob);
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) unlock(saved);
});
