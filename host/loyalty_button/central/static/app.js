// The chain dashboard: the stores' league table for a period, the trend,
// a store's tills, cashiers and reasons, the stores' link to the service
// and the e-mail reports. Every figure comes from /api/*; no framework, no CDN.
"use strict";
const MIN_N = 10;
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined) ? "–" : (v > 0 ? "+" : "") + Number(v).toFixed(1);
const npsClass = (v, n) => (v === null || n < MIN_N) ? "" : v >= 30 ? "good" : v < 0 ? "bad" : "warn";
let ME = null, currentStore = null, currentTab = "tills", storeData = null;

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function query() {
  const q = new URLSearchParams({range: $("range").value});
  if ($("range").value === "custom") { q.set("from", $("from").value); q.set("to", $("to").value); }
  if ($("region").value) q.set("region", $("region").value);
  return q.toString();
}

async function get(path) {
  const resp = await fetch(path, {credentials: "same-origin"});
  if (resp.status === 401) { location.href = "/login"; throw new Error("log in"); }
  if (!resp.ok) throw new Error(await resp.text());
  return resp.json();
}

function ago(s) {
  if (s === null || s === undefined) return t("never");
  const t_ = s < 120 ? s + " " + t("unit_s") : s < 7200 ? Math.round(s / 60) + " " + t("unit_min")
    : s < 172800 ? Math.round(s / 3600) + " " + t("unit_h") : Math.round(s / 86400) + " " + t("unit_d");
  return t("ago", {t: t_});
}

function drawTrend(svg, days) {
  svg.textContent = "";
  svg.lastDays = days;  // redrawn at the new width when the window changes
  const ns = "http://www.w3.org/2000/svg";
  const pts = days.filter((d) => d.nps !== null);
  if (!pts.length) return;
  // One SVG unit a CSS pixel: the labels keep their size on a phone.
  const W = Math.max(300, Math.round(svg.clientWidth || 800)), H = 220, L = 40, B = 20;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  // The axis fits the figures (with their band), so a week's change shows.
  let lo = Math.min(...pts.map((d) => d.ci95_low)), hi = Math.max(...pts.map((d) => d.ci95_high));
  lo = Math.max(-100, Math.floor(lo / 10) * 10); hi = Math.min(100, Math.ceil(hi / 10) * 10);
  if (hi - lo < 20) { hi = Math.min(100, lo + 20); }
  const x = (i) => L + (pts.length === 1 ? (W - L) / 2 : i * (W - L - 10) / (pts.length - 1));
  const y = (v) => 10 + (hi - v) * (H - B - 10) / (hi - lo);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
  };
  for (const v of [lo, (lo + hi) / 2, hi]) {
    add("line", {x1: L, x2: W, y1: y(v), y2: y(v), class: "axis"});
    add("text", {x: 2, y: y(v) + 4, class: "tick"}, String(Math.round(v)));
  }
  const band = pts.map((d, i) => `${x(i)},${y(d.ci95_high)}`).concat(
    pts.map((d, i) => `${x(i)},${y(d.ci95_low)}`).reverse());
  add("polygon", {points: band.join(" "), class: "band"});
  add("polyline", {points: pts.map((d, i) => `${x(i)},${y(d.nps)}`).join(" "), class: "line"});
  const step = Math.max(1, Math.ceil(pts.length / Math.max(2, Math.floor(W / 70))));  // labels that do not overlap
  pts.forEach((d, i) => { if (i % step === 0) add("text", {x: x(i) - 18, y: H - 4, class: "tick"}, d.day.slice(5)); });
}

function cards(league, previous) {
  const c = league.chain;
  $("nps").textContent = fmt(c.nps);
  $("nps").className = "big " + npsClass(c.nps, c.n);
  $("nps-sub").textContent = c.n ? t("ci", {low: fmt(c.ci95_low), high: fmt(c.ci95_high), n: c.n}) : t("no_answers");
  $("nps-prev").textContent = !previous ? "" : previous.nps.n ? t("prev", {value: fmt(previous.nps.nps)}) : t("prev_none");
  $("rate").textContent = c.response_pct === null ? "–" : c.response_pct + "%";
  $("rate-sub").textContent = t("rate_detail", {answered: c.answered, asked: c.asked});
  $("csat").textContent = c.csat_mean === null ? "–" : c.csat_mean.toFixed(2);
  $("csat-sub").textContent = t("csat_detail", {n: c.csat_n});
}

function leagueTable(league) {
  $("formula").textContent = t("formula", {formula: league.formula, w: league.weight, wai: fmt(league.chain.nps)});
  const body = $("league").querySelector("tbody");
  body.textContent = "";
  for (const s of league.stores) {
    const tr = document.createElement("tr");
    tr.dataset.store = s.store;
    if (s.store === currentStore) tr.className = "on";
    cell(tr, s.rank);
    cell(tr, s.name);
    cell(tr, s.region || "");
    cell(tr, fmt(s.score), "score " + npsClass(s.score, s.n));
    cell(tr, fmt(s.nps), s.n < MIN_N ? "few" : "");
    cell(tr, s.n ? `${fmt(s.ci95_low)} … ${fmt(s.ci95_high)}` : "–");
    cell(tr, s.n);
    cell(tr, s.response_pct === null ? "–" : s.response_pct + "%");
    tr.addEventListener("click", () => openStore(s.store));
    body.appendChild(tr);
  }
}

function storeTable() {
  const table = $("store-table");
  table.textContent = "";
  if (!storeData) return;
  const head = document.createElement("tr");
  const addHead = (text) => { const th = document.createElement("th"); th.textContent = text; head.appendChild(th); };
  if (currentTab === "reasons") {
    [t("col_group"), t("col_reason"), t("col_count")].forEach(addHead);
    table.appendChild(head);
    for (const [grp, reasons] of Object.entries(storeData.reasons))
      for (const [reason, n] of Object.entries(reasons)) {
        const tr = document.createElement("tr");
        cell(tr, grp); cell(tr, reason); cell(tr, n);
        table.appendChild(tr);
      }
    return;
  }
  const by = {tills: "till", cashiers: "cashier", questions: "question"}[currentTab];
  [t("by_" + by), t("nps"), t("col_ci"), t("col_answers"), t("col_response")].forEach(addHead);
  table.appendChild(head);
  for (const r of storeData[currentTab]) {
    const tr = document.createElement("tr");
    if (r.n < MIN_N) tr.className = "few";
    cell(tr, r[by]); cell(tr, fmt(r.nps), npsClass(r.nps, r.n));
    cell(tr, r.n ? `${fmt(r.ci95_low)} … ${fmt(r.ci95_high)}` : "–");
    cell(tr, r.n); cell(tr, r.response_pct === null ? "–" : r.response_pct + "%");
    table.appendChild(tr);
  }
}

async function openStore(store) {
  currentStore = store;
  storeData = await get(`/api/store/${encodeURIComponent(store)}?${query()}`);
  $("store-box").hidden = false;
  $("store-title").textContent = `${storeData.name} (${storeData.store})`;
  const n = storeData.summary.nps;
  const phone = storeData.phone;
  $("store-summary").textContent = t("store_summary", {nps: fmt(n.nps), low: fmt(n.ci95_low), high: fmt(n.ci95_high), n: n.n, rate: storeData.summary.response.rate_pct ?? "–"})
    + (phone && phone.answers ? t("store_phone", {n: phone.answers, nps: fmt(phone.nps.nps)}) : "");
  storeTable();
  drawTrend($("store-trend"), storeData.trend);
  for (const tr of $("league").querySelectorAll("tbody tr")) tr.classList.toggle("on", tr.dataset.store === store);
}

async function fleet() {
  const data = await get("/api/fleet");
  $("fleet-note").textContent = t("fleet_note", {h: data.silent_after_h, min: data.behind_after_min});
  const body = $("fleet").querySelector("tbody");
  body.textContent = "";
  for (const s of data.stores) {
    const tr = document.createElement("tr");
    cell(tr, s.name); cell(tr, ago(s.last_heard_s));
    cell(tr, s.pending ? t("waiting", {n: s.pending, since: ago(s.waiting_s)}) : s.pending === 0 ? "0" : "–");
    cell(tr, s.panels_offline.length ? t("tills_list", {list: s.panels_offline.join(", ")}) : "–");
    cell(tr, s.records); cell(tr, s.refused + (s.last_refusal ? ` (${s.last_refusal})` : ""));
    cell(tr, s.problems.map((p) => t("p_" + p)).join(", "), "problems");
    body.appendChild(tr);
  }
}

async function subscriptions(change) {
  let data;
  if (change) {
    const resp = await fetch("/api/subscriptions", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(change)});
    data = await resp.json();
  } else {
    data = await get("/api/subscriptions");
  }
  $("sub-daily").checked = data.subscribed.includes("daily");
  $("sub-weekly").checked = data.subscribed.includes("weekly");
  const body = $("sends").querySelector("tbody");
  body.textContent = "";
  for (const s of data.sends) {
    const tr = document.createElement("tr");
    cell(tr, t("every_" + s.every)); cell(tr, s.from === s.to ? s.from : `${s.from} – ${s.to}`);
    cell(tr, t("state_" + s.state), s.state === "failed" ? "bad" : ""); cell(tr, s.attempts);
    cell(tr, s.last_error || "");
    body.appendChild(tr);
  }
}

async function refresh() {
  const [league, trend] = await Promise.all([get("/api/league?" + query()), get("/api/trend?" + query())]);
  const p = league.period;
  $("days").textContent = p.from ? t("days_note", {from: p.from, to: p.to}) : t("days_all");
  cards(league, league.previous);
  leagueTable(league);
  drawTrend($("trend"), trend.days);
  if (currentStore) await openStore(currentStore);
  await fleet();
}

function translate() {
  translatePage();
  if (ME) $("who").textContent = `${ME.name} · ${t("role_" + ME.role, {scope: ME.scope})}`;
}

async function start() {
  ME = await get("/api/me");
  translate();
  if (ME.regions.length > 1) {
    $("region-pick").hidden = false;
    for (const r of ME.regions) {
      const o = document.createElement("option");
      o.value = r; o.textContent = r || t("none");
      $("region").appendChild(o);
    }
  }
  if (ME.role === "store") await openStore(ME.scope);
  $("range").addEventListener("change", () => { $("custom").hidden = $("range").value !== "custom"; if ($("range").value !== "custom") refresh(); });
  for (const id of ["from", "to"]) $(id).addEventListener("change", () => { if ($("from").value && $("to").value) refresh(); });
  $("region").addEventListener("change", refresh);
  for (const b of document.querySelectorAll("#store-tabs button")) b.addEventListener("click", () => {
    currentTab = b.dataset.by;
    for (const o of document.querySelectorAll("#store-tabs button")) o.classList.toggle("on", o === b);
    storeTable();
  });
  for (const b of document.querySelectorAll("#langs button")) b.addEventListener("click", () => {
    LANG = b.dataset.lang; localStorage.setItem("lb-lang", LANG); translate(); refresh(); storeTable();
  });
  $("sub-daily").addEventListener("change", (e) => subscriptions({every: "daily", on: e.target.checked}));
  $("sub-weekly").addEventListener("change", (e) => subscriptions({every: "weekly", on: e.target.checked}));
  await refresh();
  await subscriptions();
  setInterval(() => refresh().catch(() => {}), 60000);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      for (const svg of [$("trend"), $("store-trend")]) if (svg.lastDays) drawTrend(svg, svg.lastDays);
    }, 150);
  });
}

start();
