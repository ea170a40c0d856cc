"""The operator page's HTML: one self-contained document (no external script, style or font: a
worker's web port is often reached through a port-forward with no internet behind it). Its
script asks ``/operator/state`` (agents/operator_state.py) every two seconds and turns two
consecutive totals into rates. Every number carries an ``id`` or ``data-*`` name, so a test (or
a person with the browser's inspector) reads it without parsing the layout."""

from __future__ import annotations

REFRESH_MS = 2000

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>notify: operator</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
 h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
 table { border-collapse: collapse; min-width: 24em; }
 th, td { border-bottom: 1px solid #ddd; padding: .25em .8em .25em 0; text-align: left; }
 td.n { text-align: right; font-variant-numeric: tabular-nums; }
 .open { color: #b00; font-weight: bold; } .half_open { color: #b60; } .closed { color: #070; }
 #status { color: #666; } .stale { color: #b00; }
 .cards span { display: inline-block; margin-right: 2em; }
 .cards b { font-size: 1.4em; display: block; }
</style>
</head>
<body>
<h1>notify worker</h1>
<div id="status">loading...</div>
<div class="cards">
 <span>delivered<b id="delivered-total">-</b></span>
 <span>delivered/s<b id="delivered-rate">-</b></span>
 <span>sent/s<b id="sent-rate">-</b></span>
 <span>failed attempts<b id="failed-total">-</b></span>
 <span>requests<b id="requests-total">-</b></span>
</div>
<h2>Lanes</h2>
<table><thead><tr><th>topic</th><th>partitions here</th><th>lag</th></tr></thead>
<tbody id="lanes"></tbody></table>
<p>sends in flight: <span id="in-flight"></span><br>
request topics' lag: <span id="requests-lag"></span></p>
<h2>Delivered by channel / provider</h2>
<table><tbody id="delivered-by"></tbody></table>
<h2>Circuit breakers</h2>
<table><tbody id="breakers"></tbody></table>
<h2>Hot keys flagged</h2>
<table><tbody id="hot-keys"></tbody></table>
<h2>Dead letters</h2>
<table><tbody id="dead-letters"></tbody></table>
<h3>Newest</h3>
<table><thead><tr><th>at</th><th>topic</th><th>record</th><th>reason</th></tr></thead>
<tbody id="recent-dead-letters"></tbody></table>
<h2>Campaigns</h2>
<table><thead><tr><th>campaign</th><th>scanned</th><th>targeted</th><th>enqueued</th>
<th>delivered</th><th>failed</th></tr></thead><tbody id="campaigns"></tbody></table>
<script>
"use strict";
let previous = null;
function cell(text, attrs) {
  const td = document.createElement("td");
  td.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) td.setAttribute(k, v);
  if (typeof text === "number") td.className = "n";
  return td;
}
function rows(id, items, build) {
  const body = document.getElementById(id);
  body.replaceChildren(...items.map(item => {
    const tr = document.createElement("tr");
    tr.append(...build(item));
    return tr;
  }));
  if (!items.length) body.innerHTML = "<tr><td>none</td></tr>";
}
function pairs(id, mapping, name) {
  rows(id, Object.entries(mapping), ([k, v]) => [cell(k), cell(v, {[name]: k})]);
}
function render(s) {
  const t = s.totals;
  document.getElementById("delivered-total").textContent = t.delivered;
  document.getElementById("failed-total").textContent = t.failed;
  document.getElementById("requests-total").textContent = t.requests;
  if (previous && s.at > previous.at) {
    const dt = s.at - previous.at;
    document.getElementById("delivered-rate").textContent =
      ((t.delivered - previous.totals.delivered) / dt).toFixed(1);
    document.getElementById("sent-rate").textContent =
      ((t.sent - previous.totals.sent) / dt).toFixed(1);
  }
  previous = s;
  rows("lanes", s.lanes, l => [cell(l.topic), cell(l.partitions),
       cell(l.lag, {"data-lane": l.topic, "data-field": "lag"})]);
  document.getElementById("in-flight").textContent =
    Object.entries(s.in_flight).map(([p, n]) => p + " " + n).join(", ") || "none";
  document.getElementById("requests-lag").textContent =
    Object.entries(s.requests_lag).map(([p, n]) => p + " " + n).join(", ") || "none";
  pairs("delivered-by", s.delivered_by, "data-delivered");
  rows("breakers", s.breakers, b => [cell(b.breaker),
       cell(b.state, {"class": b.state, "data-breaker": b.breaker})]);
  pairs("hot-keys", s.hot_keys, "data-hot-keys");
  pairs("dead-letters", s.dead_letters, "data-dead-letters");
  rows("recent-dead-letters", s.recent_dead_letters, d => [
    cell(new Date(d.at * 1000).toISOString().slice(11, 19)), cell(d.topic),
    cell(d.source, {"data-source": d.source}), cell(d.reason)]);
  rows("campaigns", s.campaigns, c => [cell(c.campaign),
    ...["scanned", "targeted", "enqueued", "delivered", "failed"].map(
      k => cell(c[k] || 0, {"data-campaign": c.campaign, "data-field": k}))]);
  const status = document.getElementById("status");
  status.textContent = "updated " + new Date(s.at * 1000).toISOString();
  status.className = "";
  status.setAttribute("data-updated", String(s.at));
}
async function refresh() {
  try {
    const answer = await fetch("operator/state", {cache: "no-store"});
    render(await answer.json());
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = "not updated: " + error;
    status.className = "stale";
  }
}
refresh();
setInterval(refresh, __REFRESH_MS__);
</script>
</body>
</html>
""".replace("__REFRESH_MS__", str(REFRESH_MS))
