// The dashboard page: one self-contained HTML document (no external assets: a LAN deploy may have
// no internet) that follows `/events` (server-sent events) and redraws one row per target.
export const page = (title: string): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ezio deploy: ${title.replace(/[<>&"]/g, "")}</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; padding: 12px; background: #f6f7f9; color: #1d232b; }
  h1 { font-size: 18px; margin: 0 0 8px; word-break: break-all; }
  #summary { display: flex; flex-wrap: wrap; gap: 6px 18px; margin-bottom: 10px; }
  #summary b { font-variant-numeric: tabular-nums; }
  table { width: 100%; border-collapse: collapse; background: #fff; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e3e6ea; font-variant-numeric: tabular-nums; }
  th { font-size: 12px; text-transform: uppercase; color: #5b6673; }
  .bar { position: relative; height: 18px; min-width: 90px; background: #e3e6ea; border-radius: 4px; overflow: hidden; }
  .bar > div { position: absolute; inset: 0 auto 0 0; background: #3b82f6; }
  .bar > span { position: relative; font-size: 12px; padding-left: 6px; line-height: 18px; }
  tr.seeding .bar > div, tr.done .bar > div { background: #16a34a; }
  tr.gone { color: #9aa3ad; } tr.gone .bar > div { background: #dc2626; }
  .state { font-size: 12px; }
  @media (max-width: 560px) { .addr, .up { display: none; } th, td { padding: 5px 4px; } }
</style>
</head>
<body>
<h1>ezio deploy: ${title.replace(/[<>&"]/g, "")}</h1>
<div id="summary">
  <span>done <b id="done">0</b>/<b id="total">0</b></span>
  <span>rate <b id="rate">0 B/s</b></span>
  <span>ETA <b id="eta">-</b></span>
  <span id="live">connecting</span>
</div>
<table>
  <thead><tr><th>target</th><th class="addr">address</th><th>progress</th><th>rate</th><th class="up">served</th><th>state</th></tr></thead>
  <tbody id="targets"></tbody>
</table>
<script>
const units = ["B", "KiB", "MiB", "GiB", "TiB"];
const bytes = (n) => { let i = 0; while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + units[i]; };
const eta = (s) => s === null || s === undefined ? "-" : s < 60 ? Math.ceil(s) + " s" : Math.floor(s / 60) + " min " + Math.ceil(s % 60) + " s";
const cell = (tr, cls) => { let td = tr.querySelector("." + cls); if (!td) { td = document.createElement("td"); td.className = cls; tr.appendChild(td); } return td; };
function draw(d) {
  const t = d.totals;
  document.getElementById("done").textContent = t.byState.done + t.byState.seeding;
  document.getElementById("total").textContent = t.total;
  document.getElementById("rate").textContent = bytes(t.downloadRate) + "/s";
  document.getElementById("eta").textContent = eta(t.eta);
  const body = document.getElementById("targets");
  const rows = new Map([...body.children].map((tr) => [tr.dataset.target, tr]));
  for (const x of d.targets) {
    let tr = rows.get(x.peerId);
    if (!tr) { tr = document.createElement("tr"); tr.dataset.target = x.peerId; body.appendChild(tr); }
    rows.delete(x.peerId);
    tr.className = x.state;
    cell(tr, "name").textContent = x.name || x.address;
    cell(tr, "addr").textContent = x.address;
    const pct = Math.floor(x.progress * 1000) / 10;
    const bar = cell(tr, "progress");
    if (!bar.firstChild) bar.innerHTML = '<div class="bar"><div></div><span></span></div>';
    bar.querySelector(".bar > div").style.width = pct + "%";
    bar.querySelector(".bar > span").textContent = pct + "%";
    cell(tr, "rate").textContent = bytes(x.downloadRate) + "/s";
    cell(tr, "up").textContent = bytes(x.uploaded);
    cell(tr, "state").textContent = x.state;
  }
  for (const tr of rows.values()) tr.remove();
}
const source = new EventSource("events");
source.onmessage = (e) => { document.getElementById("live").textContent = "live"; draw(JSON.parse(e.data)); };
source.onerror = () => { document.getElementById("live").textContent = "reconnecting"; };
</script>
</body>
</html>
`
