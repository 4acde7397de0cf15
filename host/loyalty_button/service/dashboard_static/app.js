// The dashboard's page: fetches the host's JSON APIs and draws the health
// banner, cards, tables and SVG charts, in the manager's language
// (i18n.js). No framework and no CDN: the store may have no internet.
"use strict";
const BREAKDOWNS = ["till", "cashier", "question", "language", "hour", "member", "segment",
                    "advert", "emotion", "store"];
// Fewer answers than this in a row or a card: shown, not coloured, and
// said to be too few (an NPS of 4 answers swings 25 points on one shopper).
const MIN_N = 10;
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined) ? "–" : (v > 0 ? "+" : "") + v.toFixed(1);
const when = (ms) => ms ? new Date(ms).toLocaleString(LANG) : "–";
const npsClass = (v, n) => (v === null || n < MIN_N) ? "" : v >= 30 ? "good" : v < 0 ? "bad" : "warn";

let NAMES = {questions: {}, options: {}, reasons: {}};
let lastGood = null;      // when the host last answered
let lastStatus = null;
let currentBy = "till", currentTrend = "day";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function named(kind, id) {
  const names = NAMES[kind] && NAMES[kind][id];
  return (names && (names[LANG] || names.en || Object.values(names)[0])) || id;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function api(path, options) {
  for (;;) {
    const r = await fetch(path, options);
    if (r.status === 401) { location.href = "/login"; throw new Error("logged out"); }
    if (r.status === 503) {
      // A report that takes long goes on in the background: say so, ask again.
      const body = await r.json().catch(() => ({}));
      if (body.computing) {
        $("computing").hidden = false;
        await sleep(1000 * (body.retry_after_s || 2));
        continue;
      }
    }
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    $("computing").hidden = true;
    return r.json();
  }
}

function rangeQuery() {
  const name = $("range").value;
  let q = "range=" + encodeURIComponent(name);
  if (name === "custom") q += "&from=" + encodeURIComponent($("from").value) + "&to=" + encodeURIComponent($("to").value);
  return q;
}

function npsText(n) {
  return n.n ? fmt(n.nps) + (n.n < MIN_N ? "*" : "") : "–";
}

async function summary() {
  if ($("range").value === "custom" && !($("from").value && $("to").value)) return;
  const s = await api("/api/summary?" + rangeQuery());
  $("store").textContent = "· " + t("store", {store: s.store});
  const n = s.nps;
  $("nps").textContent = npsText(n);
  $("nps").className = "big " + npsClass(n.nps, n.n);
  $("nps-ci").textContent = !n.n ? t("no_answers") : n.n < MIN_N ? t("too_few_card", {n: n.n}) :
    t("ci", {low: fmt(n.ci95_low), high: fmt(n.ci95_high), n: n.n});
  $("nps-split").textContent = t("split", {pro: n.promoters, pas: n.passives, det: n.detractors, dec: n.declined}) +
    (n.burst_excluded ? t("burst", {n: n.burst_excluded}) : "");
  const r = s.response;
  $("rate").textContent = r.rate_pct === null ? "–" : r.rate_pct + "%";
  $("rate-detail").textContent = t("rate_detail", r);
  const c = s.csat;
  $("csat").textContent = c.mean === null ? "–" : c.mean.toFixed(2) + (c.n < MIN_N ? "*" : "");
  $("csat-dist").textContent = c.n ? t("csat_dist", {dist: [1, 2, 3, 4, 5].map((k) => c.distribution[k]).join(" / "), pct: c.satisfied_pct}) : "";
  const p = s.previous;
  const days = s.range.period ? Math.round((s.range.period[1] - s.range.period[0]) / 86400) : 0;
  $("range-note").textContent = p ? t("range_vs", {days}) : "";
  $("nps-prev").textContent = p ? (p.nps.n ? t("prev", {value: npsText(p.nps)}) : t("prev_none")) : "";
  $("rate-prev").textContent = p ? (p.response.rate_pct === null ? t("prev_none") : t("prev", {value: p.response.rate_pct + "%"})) : "";
  $("csat-prev").textContent = p ? (p.csat.mean === null ? t("prev_none") : t("prev", {value: p.csat.mean.toFixed(2)})) : "";
  const box = $("reasons");
  box.textContent = "";
  for (const [group, counts] of Object.entries(s.reasons)) {
    const para = document.createElement("p");
    para.textContent = groupName(group) + ": " + Object.entries(counts)
      .sort((a, b) => b[1] - a[1]).map(([k, v]) => `${named("reasons", k)} ${v}`).join(", ");
    box.appendChild(para);
  }
  if (!box.children.length) box.textContent = t("no_reasons");
}

// A reasons group: an NPS class, or kind:value (a CSAT score, a yes/no).
function groupName(group) {
  if (["promoter", "passive", "detractor"].includes(group)) return t("group_" + group);
  const [kind, value] = group.split(":");
  return t("group_kind", {kind: kind.toUpperCase(), value});
}

function rowKey(by, key) {
  if (key === "(none)") return t("none");
  if (by === "question") return named("questions", key);
  return key;
}

// Breakdowns kept by the hour follow the period picked (dashboard.py's
// PERIOD_BREAKDOWNS); the rest are for all time, and say so.
const PERIOD_BY = ["hour", "day", "week", "till", "weekday_hour"];

function periodOf(by) {
  return PERIOD_BY.includes(by) && $("range").value !== "all" ? "&" + rangeQuery() : "";
}

async function breakdown(by) {
  currentBy = by;
  if ($("range").value === "custom" && !($("from").value && $("to").value)) return;
  const d = await api("/api/breakdown?by=" + encodeURIComponent(by) + periodOf(by));
  $("breakdown-note").textContent = periodOf(by) ? t("period_note") : t("all_time_note");
  for (const b of $("tabs").children) b.classList.toggle("on", b.dataset.by === by);
  const head = $("breakdown").tHead, body = $("breakdown").tBodies[0];
  head.innerHTML = "";
  body.innerHTML = "";
  const hr = head.insertRow();
  for (const h of [t("by_" + by), t("col_answers"), "NPS", t("col_ci"), "CSAT", t("col_response")]) {
    const th = document.createElement("th"); th.textContent = h; hr.appendChild(th);
  }
  for (const row of d.rows) {
    const tr = body.insertRow();
    const few = row.n < MIN_N;
    if (few) tr.className = "few";
    cell(tr, rowKey(by, row[by]));
    cell(tr, row.n);
    cell(tr, few && row.n ? `${fmt(row.nps)} · ${t("too_few")}` : fmt(row.nps), npsClass(row.nps, row.n));
    cell(tr, row.n && !few ? `${fmt(row.ci95_low)} … ${fmt(row.ci95_high)}` : "–");
    cell(tr, row.csat_mean === null ? "–" : row.csat_mean.toFixed(2));
    cell(tr, row.response_pct === null ? "–" : row.response_pct + "%");
  }
  $("breakdown-csv").href = "/export/breakdown.csv?by=" + encodeURIComponent(by) + periodOf(by);
}

async function trend(by) {
  currentTrend = by;
  if ($("range").value === "custom" && !($("from").value && $("to").value)) return;
  const d = await api("/api/breakdown?by=" + by + periodOf(by));
  for (const b of $("trend-tabs").children) b.classList.toggle("on", b.dataset.by === by);
  const svg = $("trend");
  svg.setAttribute("aria-label", t("trend_label"));
  // Drawn at the box's own width: on a phone the labels stay readable.
  const W = Math.max(300, svg.clientWidth || 800), H = 220, L = 36, B = 30;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const rows = d.rows.filter((r) => r.n > 0);
  const x = (i) => L + (rows.length < 2 ? (W - L) / 2 : i * (W - L - 20) / (rows.length - 1));
  const y = (v) => 10 + (100 - v) * (H - B - 10) / 200;
  let out = "";
  for (const v of [-100, -50, 0, 50, 100]) {
    out += `<line x1="${L}" x2="${W}" y1="${y(v)}" y2="${y(v)}" stroke="#e3e6ec"/>` +
           `<text x="2" y="${y(v) + 4}" font-size="12" fill="#4a5468">${v}</text>`;
  }
  if (rows.length) {
    const band = rows.map((r, i) => `${x(i)},${y(r.ci95_high)}`).concat(
      rows.map((r, i) => `${x(i)},${y(r.ci95_low)}`).reverse()).join(" ");
    out += `<polygon points="${band}" fill="#cfe0ff" opacity="0.7"/>`;
    out += `<polyline points="${rows.map((r, i) => `${x(i)},${y(r.nps)}`).join(" ")}" fill="none" stroke="#1c4fd8" stroke-width="2"/>`;
    // As many date labels as fit at ~90 px each; on a narrow box without
    // the year.
    const every = Math.max(1, Math.ceil(rows.length * 90 / (W - L)));
    const label = (r) => by === "day" && W < 600 ? r[by].slice(5) : r[by];
    rows.forEach((r, i) => {
      const few = r.n < MIN_N;
      out += `<circle cx="${x(i)}" cy="${y(r.nps)}" r="3" fill="${few ? "#fff" : "#1c4fd8"}" stroke="#1c4fd8"><title>${r[by]}: NPS ${fmt(r.nps)} (n ${r.n})</title></circle>`;
      if (i % every === 0 || i === rows.length - 1) {
        out += `<text x="${x(i)}" y="${H - 8}" font-size="12" fill="#4a5468" text-anchor="${i === 0 && rows.length > 1 ? "start" : i === rows.length - 1 && rows.length > 1 ? "end" : "middle"}">${label(r)}</text>`;
      }
    });
  } else {
    out += `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#4a5468">${t("no_answers")}</text>`;
  }
  svg.innerHTML = out;
}

function answerName(qid, value) {
  return value === "yes" || value === "no" ? t(value) : named("options", qid + ":" + value);
}

// Every yes/no and choice question: a bar per answer with its share and
// the share's 95% interval as a whisker; too few answers are said so.
async function answers() {
  const d = await api("/api/answers");
  const box = $("answers");
  box.textContent = "";
  for (const [qid, q] of Object.entries(d)) {
    const h = document.createElement("h3");
    h.textContent = named("questions", qid);
    const few = q.n < MIN_N;
    const note = document.createElement("span");
    note.className = "sub";
    note.textContent = " " + t("answers_n", {n: q.n}) + (few ? " · " + t("too_few") : "");
    h.appendChild(note);
    box.appendChild(h);
    for (const v of q.values) {
      const row = document.createElement("div");
      row.className = "answer" + (few ? " few" : "");
      row.dataset.value = v.value;
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = answerName(qid, v.value);
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = v.pct + "%";
      const whisker = document.createElement("span");
      whisker.className = "whisker";
      whisker.style.left = v.ci95_low + "%";
      whisker.style.width = (v.ci95_high - v.ci95_low) + "%";
      bar.append(fill, whisker);
      const figs = document.createElement("span");
      figs.className = "figs";
      figs.textContent = t("answer_row", {n: v.n, pct: v.pct, low: v.ci95_low, high: v.ci95_high});
      row.append(label, bar, figs);
      box.appendChild(row);
    }
    // The same per till: each answer's share, with its interval.
    const tills = Object.entries(q.tills || {});
    if (tills.length > 1) {
      const wrap = document.createElement("div");
      wrap.className = "scroll";
      const table = document.createElement("table");
      table.className = "by-till";
      const hr = table.createTHead().insertRow();
      const values = q.values.map((v) => v.value);
      for (const h of [t("by_till"), t("col_answers"), ...values.map((v) => answerName(qid, v))]) {
        const th = document.createElement("th"); th.textContent = h; hr.appendChild(th);
      }
      const body = table.createTBody();
      for (const [till, r] of tills) {
        const tr = body.insertRow();
        if (r.n < MIN_N) tr.className = "few";
        cell(tr, till);
        cell(tr, r.n < MIN_N ? `${r.n} · ${t("too_few")}` : r.n);
        for (const value of values) {
          const v = r.values.find((x) => x.value === value);
          cell(tr, !v ? "0%" : r.n < MIN_N ? v.pct + "%" : `${v.pct}% (${v.ci95_low}–${v.ci95_high})`);
        }
      }
      wrap.appendChild(table);
      box.appendChild(wrap);
    }
  }
  if (!box.children.length) box.textContent = t("no_choice_answers");
}

// The phone survey: how many links were answered, the phone's NPS, and
// the latest comments, as text (a shopper's words are never markup).
async function phoneSurvey() {
  const d = await api("/api/phone");
  $("phone").hidden = !d.links;
  if (!d.links) return;
  const pct = Math.round(1000 * d.answers / d.links) / 10;
  $("phone-figs").textContent = t("phone_figs", {answers: d.answers, links: d.links, pct,
                                                 nps: npsText(d.nps)});
  const box = $("phone-comments");
  box.textContent = "";
  for (const c of d.comments) {
    const q = document.createElement("blockquote");
    q.className = "comment";
    const p = document.createElement("p");
    p.textContent = c.text;
    const by = document.createElement("p");
    by.className = "sub";
    by.textContent = t("phone_comment", {till: c.till, response: c.response,
                                         when: new Date(c.at_ms).toLocaleString()});
    q.append(p, by);
    box.appendChild(q);
  }
}

// Answers per hour of the week (rows Monday..Sunday, columns 0-23), shaded
// by count; hours with fewer than MIN_N answers stay grey.
async function weekHours() {
  if ($("range").value === "custom" && !($("from").value && $("to").value)) return;
  const d = await api("/api/breakdown?by=weekday_hour&" + rangeQuery());
  const grid = {};
  let most = 0;
  for (const r of d.rows) { grid[r.weekday_hour] = r; most = Math.max(most, r.n); }
  const table = $("weekhours");
  table.innerHTML = "";
  const hr = table.createTHead().insertRow();
  hr.appendChild(document.createElement("th"));
  for (let h = 0; h < 24; h++) { const th = document.createElement("th"); th.textContent = h; hr.appendChild(th); }
  const body = table.createTBody();
  const days = t("weekdays").split(" ");
  for (let wd = 1; wd <= 7; wd++) {
    const tr = body.insertRow();
    const th = document.createElement("th"); th.textContent = days[wd - 1]; tr.appendChild(th);
    for (let h = 0; h < 24; h++) {
      const r = grid[`${wd}-${String(h).padStart(2, "0")}`];
      const td = cell(tr, r && r.n ? r.n : "");
      if (r && r.n >= MIN_N) {
        td.style.background = `rgba(28, 79, 216, ${(0.15 + 0.85 * r.n / most).toFixed(2)})`;
        if (r.n / most > 0.55) td.style.color = "#fff";
        td.title = `NPS ${fmt(r.nps)} (n ${r.n})`;
      } else if (r && r.n) {
        td.className = "few";
        td.title = `n ${r.n}: ${t("too_few")}`;
      }
    }
  }
}

// A panel's update slot and state (docs/ota.md), with the last failure.
function updateText(ota) {
  if (!ota) return "–";
  let text = `${ota.slot}, ${ota.state.replace("_", " ")}`;
  if (ota.pct !== undefined) text += ` ${ota.pct}%`;
  if (ota.version && ota.state !== "ok") text += ` (${ota.version})`;
  if (ota.reason) text += `: ${ota.reason}`;
  return text;
}

function stateText(state) {
  const key = "state_" + state;
  return STRINGS.en[key] ? t(key) : state;
}

function healthBanner(problems) {
  const list = $("problems");
  list.innerHTML = "";
  for (const p of problems) {
    const li = document.createElement("li");
    li.className = p.severity;
    li.dataset.code = p.code;
    const params = Object.assign({}, p.params);
    if (params.state) params.state = stateText(params.state);
    const what = document.createElement("strong");
    what.textContent = t("health_" + p.code, params);
    const todo = document.createElement("span");
    todo.textContent = " " + t("todo_" + p.code, params);
    li.append(what, todo);
    list.appendChild(li);
  }
  $("health").hidden = problems.length === 0;
}

async function status() {
  const s = await api("/api/status");
  lastStatus = s;
  NAMES = s.names && s.names.questions ? s.names : NAMES;
  const fleet = $("fleet").tBodies[0];
  fleet.innerHTML = "";
  const panels = new Set([...Object.values(s.tills || {}), ...Object.keys(s.panels), ...Object.keys(s.fleet)]);
  for (const p of [...panels].sort()) {
    const f = s.fleet[p] || {}, state = s.panels[p] || f.state;
    const tr = fleet.insertRow();
    cell(tr, p);
    cell(tr, state ? stateText(state) : t("never_connected"), state === "online" ? "good" : "bad");
    cell(tr, f.fw || "–");
    cell(tr, updateText(f.ota), f.ota && ["failed", "rolled_back", "safe"].includes(f.ota.state) ? "bad" : "");
    cell(tr, f.board === "none" ? t("headless") : (f.board || "–"));
    const ads = f.adverts, bad = ads && ads.bad && ads.bad.length ? ads.bad : null;
    cell(tr, ads ? t("ready_of", ads) + (bad ? "; " + t("refused", {list: bad.join(", ")}) : "") : "–",
         bad ? "bad" : "");
    cell(tr, when(f.last_answer_ms));
    cell(tr, f.outbox === undefined ? "–" : f.outbox);
  }
  const fw = $("forwarding").tBodies[0];
  fw.innerHTML = "";
  for (const [name, d] of Object.entries(s.forwarding)) {
    const tr = fw.insertRow();
    cell(tr, `${name} (${d.type})`);
    cell(tr, d.pending === undefined ? "–" : d.pending);
    cell(tr, d.sent === undefined ? "–" : d.sent);
    cell(tr, d.dead === undefined ? "–" : d.dead, d.dead ? "bad" : "");
    cell(tr, d.last_error || "", d.last_error ? "bad" : "");
    const td = cell(tr, "");
    if (d.dead) {
      const b = document.createElement("button");
      b.textContent = t("resend");
      b.onclick = async () => { await api("/api/resend", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({dest: name})}); status(); };
      td.appendChild(b);
    }
  }
  const dead = $("dead").tBodies[0];
  dead.innerHTML = "";
  for (const d of s.dead) {
    const tr = dead.insertRow();
    cell(tr, d.dest); cell(tr, d.record_id); cell(tr, d.attempts); cell(tr, d.last_error || "");
  }
  // Receipts whose shopper was never asked (the panel was offline) are not
  // in the response rate's "asked": said beside it, since the host started.
  const rc = s.receipts || {};
  $("rate-offline").textContent = rc.panel_offline ?
    t("not_asked_offline", {n: rc.panel_offline, receipts: rc.receipts}) : "";
  return s;
}

function tabs() {
  for (const by of BREAKDOWNS) {
    const b = document.createElement("button");
    b.dataset.by = by;
    b.id = "tab-" + by;
    b.onclick = () => breakdown(by);
    $("tabs").appendChild(b);
  }
  for (const b of $("trend-tabs").children) b.onclick = () => trend(b.dataset.by);
  const follow = () => Promise.all([summary(), weekHours(), trend(currentTrend), breakdown(currentBy)])
    .catch(unreachable);
  $("range").onchange = () => {
    $("custom").hidden = $("range").value !== "custom";
    follow();
  };
  $("from").onchange = $("to").onchange = follow;
  for (const b of $("langs").children) {
    b.onclick = () => {
      localStorage.setItem("lb-lang", b.dataset.lang);
      LANG = b.dataset.lang;
      translate();
      everything().catch(unreachable);
    };
  }
}

function translate() {
  translatePage();
  for (const b of $("tabs").children) b.textContent = t("by_" + b.dataset.by);
}

// The host stopped answering: its numbers stay up, with a banner saying
// since when they are stale (a failed request, not a refused one).
function unreachable(err) {
  if (err && String(err.message).startsWith("/")) return;  // an HTTP error: the host answered
  const since = lastGood ? new Date(lastGood).toLocaleTimeString(LANG) : "–";
  const problems = (lastStatus && lastStatus.health) || [];
  healthBanner([{code: "host_unreachable", severity: "error", params: {since}}, ...problems]);
}

async function refresh() {
  // The status first: it brings the catalogue's names the summary uses.
  const s = await status();
  await summary();
  lastGood = Date.now();
  healthBanner(s.health || []);
}

async function everything() {
  await refresh();
  await Promise.all([breakdown(currentBy), trend(currentTrend), weekHours(), answers(), phoneSurvey()]);
}

// The trend is drawn at its box's width: again when that changes (a phone
// turned, a window resized).
let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => trend(currentTrend).catch(unreachable), 200);
});

// The store backup: a plain form, so a large file downloads as the
// browser's own download; the host sends a refusal back as ?backup_error=.
function backupForm() {
  const form = $("backup-form"), error = $("backup-error");
  const show = (code) => { error.dataset.i18n = "backup_error_" + code; error.textContent = t(error.dataset.i18n); };
  const code = new URLSearchParams(location.search).get("backup_error");
  if (code) {
    show(code);
    history.replaceState(null, "", location.pathname);
    $("backup").scrollIntoView();
  }
  form.addEventListener("submit", (e) => {
    const one = $("backup-passphrase").value, two = $("backup-passphrase2").value;
    if (one !== two || one.length < 8) {
      e.preventDefault();
      show(one !== two ? "mismatch" : "short");
      return;
    }
    error.dataset.i18n = "backup_making";
    error.textContent = t("backup_making");
    // The fields are sent already; they are not left on the screen.
    setTimeout(() => { for (const el of form.querySelectorAll("input")) el.value = ""; }, 100);
  });
}

tabs();
backupForm();
translate();
everything().then(() => document.body.dataset.ready = "1").catch(unreachable);
setInterval(() => refresh().catch(unreachable), 5000);  // live
