// The dashboard's page: fetches the host's JSON APIs and draws tables and
// an SVG trend chart. No framework and no CDN: the store may have no internet.
"use strict";
const BREAKDOWNS = ["till", "cashier", "question", "language", "hour", "member", "segment",
                    "advert", "emotion", "store"];
const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined) ? "–" : (v > 0 ? "+" : "") + v.toFixed(1);
const when = (ms) => ms ? new Date(ms).toLocaleString() : "–";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
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

async function summary() {
  const s = await api("/api/summary");
  $("store").textContent = "· store " + s.store;
  const n = s.nps;
  $("nps").textContent = fmt(n.nps);
  $("nps").className = "big " + (n.nps === null ? "" : n.nps >= 30 ? "good" : n.nps < 0 ? "bad" : "warn");
  $("nps-ci").textContent = n.n ? `95% CI ${fmt(n.ci95_low)} to ${fmt(n.ci95_high)} · n ${n.n}` : "no answers yet";
  $("nps-split").textContent = `${n.promoters} promoters · ${n.passives} passives · ${n.detractors} detractors · ${n.declined} declined or timed out` +
    (n.burst_excluded ? ` · ${n.burst_excluded} button-mashing answers left out` : "");
  const r = s.response;
  $("rate").textContent = r.rate_pct === null ? "–" : r.rate_pct + "%";
  $("rate-detail").textContent = `${r.answered} answered of ${r.asked} asked · declined ${r.declined} · timed out ${r.timeout} · superseded ${r.superseded} · no reply ${r.no_reply}`;
  const c = s.csat;
  $("csat").textContent = c.mean === null ? "–" : c.mean.toFixed(2);
  $("csat-dist").textContent = c.n ? "1–5: " + [1, 2, 3, 4, 5].map((k) => c.distribution[k]).join(" / ") + ` · ${c.satisfied_pct}% satisfied` : "";
  const box = $("reasons");
  box.textContent = "";
  for (const [group, counts] of Object.entries(s.reasons)) {
    const p = document.createElement("p");
    p.textContent = group + ": " + Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(", ");
    box.appendChild(p);
  }
}

async function breakdown(by) {
  const d = await api("/api/breakdown?by=" + encodeURIComponent(by));
  for (const b of $("tabs").children) b.classList.toggle("on", b.dataset.by === by);
  const head = $("breakdown").tHead, body = $("breakdown").tBodies[0];
  head.innerHTML = "";
  body.innerHTML = "";
  const hr = head.insertRow();
  for (const h of [by, "answers", "NPS", "95% CI", "CSAT", "response"]) {
    const th = document.createElement("th"); th.textContent = h; hr.appendChild(th);
  }
  for (const row of d.rows) {
    const tr = body.insertRow();
    cell(tr, row[by]);
    cell(tr, row.n);
    cell(tr, fmt(row.nps), row.nps === null ? "" : row.nps >= 30 ? "good" : row.nps < 0 ? "bad" : "warn");
    cell(tr, row.n ? `${fmt(row.ci95_low)} … ${fmt(row.ci95_high)}` : "–");
    cell(tr, row.csat_mean === null ? "–" : row.csat_mean.toFixed(2));
    cell(tr, row.response_pct === null ? "–" : row.response_pct + "%");
  }
  $("breakdown-csv").href = "/export/breakdown.csv?by=" + encodeURIComponent(by);
}

async function trend(by) {
  const d = await api("/api/breakdown?by=" + by);
  for (const b of $("trend-tabs").children) b.classList.toggle("on", b.dataset.by === by);
  const svg = $("trend"), W = 800, H = 220, L = 40, B = 30;
  const rows = d.rows.filter((r) => r.n > 0);
  const x = (i) => L + (rows.length < 2 ? (W - L) / 2 : i * (W - L - 20) / (rows.length - 1));
  const y = (v) => 10 + (100 - v) * (H - B - 10) / 200;
  let out = "";
  for (const v of [-100, -50, 0, 50, 100]) {
    out += `<line x1="${L}" x2="${W}" y1="${y(v)}" y2="${y(v)}" stroke="#e3e6ec"/>` +
           `<text x="4" y="${y(v) + 4}" font-size="11" fill="#56607a">${v}</text>`;
  }
  if (rows.length) {
    const band = rows.map((r, i) => `${x(i)},${y(r.ci95_high)}`).concat(
      rows.map((r, i) => `${x(i)},${y(r.ci95_low)}`).reverse()).join(" ");
    out += `<polygon points="${band}" fill="#cfe0ff" opacity="0.7"/>`;
    out += `<polyline points="${rows.map((r, i) => `${x(i)},${y(r.nps)}`).join(" ")}" fill="none" stroke="#1c4fd8" stroke-width="2"/>`;
    rows.forEach((r, i) => {
      out += `<circle cx="${x(i)}" cy="${y(r.nps)}" r="3" fill="#1c4fd8"><title>${r[by]}: NPS ${fmt(r.nps)} (n ${r.n})</title></circle>` +
             `<text x="${x(i)}" y="${H - 8}" font-size="11" fill="#56607a" text-anchor="${i === 0 && rows.length > 1 ? "start" : i === rows.length - 1 && rows.length > 1 ? "end" : "middle"}">${r[by]}</text>`;
    });
  } else {
    out += `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#56607a">no answers yet</text>`;
  }
  svg.innerHTML = out;
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

async function status() {
  const s = await api("/api/status");
  const fleet = $("fleet").tBodies[0];
  fleet.innerHTML = "";
  const panels = new Set([...Object.values(s.tills || {}), ...Object.keys(s.panels), ...Object.keys(s.fleet)]);
  for (const p of [...panels].sort()) {
    const f = s.fleet[p] || {}, state = s.panels[p] || f.state || "never connected";
    const tr = fleet.insertRow();
    cell(tr, p);
    cell(tr, state, state === "online" ? "good" : "bad");
    cell(tr, f.fw || "–");
    cell(tr, updateText(f.ota), f.ota && ["failed", "rolled_back", "safe"].includes(f.ota.state) ? "bad" : "");
    cell(tr, f.board === "none" ? "headless" : (f.board || "–"));
    const ads = f.adverts, bad = ads && ads.bad && ads.bad.length ? ads.bad : null;
    cell(tr, ads ? `${ads.ready} of ${ads.planned}` + (bad ? `; refused: ${bad.join(", ")}` : "") : "–",
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
      b.textContent = "Re-send dead letters";
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
}

function tabs() {
  for (const by of BREAKDOWNS) {
    const b = document.createElement("button");
    b.textContent = by;
    b.dataset.by = by;
    b.id = "tab-" + by;
    b.onclick = () => breakdown(by);
    $("tabs").appendChild(b);
  }
  for (const b of $("trend-tabs").children) b.onclick = () => trend(b.dataset.by);
}

async function refresh() {
  await Promise.all([summary(), status()]);
}

tabs();
refresh().then(() => Promise.all([breakdown("till"), trend("day")]))
  .then(() => document.body.dataset.ready = "1");
setInterval(() => refresh().catch(() => {}), 5000);  // live
