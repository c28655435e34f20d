// The dashboard page as a C++ raw string: the binary serves it with nothing to install or find
// at run time. Every drawn element carries stable ids and data attributes (data-points on each
// curve, data-rank on each rank's row, data-event on each event) that tests and scripts read from
// the DOM (tests/trainer/dashboard_test.cpp). Strings from the run (paths, host names) reach the
// DOM through textContent only, never as markup.
#include "trainer/coordinator/DashboardPage.h"

namespace dptrain {

namespace {
constexpr std::string_view page = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dptrain dashboard</title>
<style>
:root { --bg: #f4f5f7; --card: #fff; --fg: #1f2933; --muted: #6b7785; --grid: #e6e8eb; --line: #d5d9de; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 18px; padding: 10px 16px;
         background: #1f2933; color: #f5f7fa; }
header h1 { font-size: 16px; margin: 0 8px 0 0; font-weight: 600; }
#summary { display: flex; flex-wrap: wrap; gap: 4px 16px; flex: 1; }
#summary .kv span { color: #9aa5b1; margin-right: 4px; }
#conn { padding: 2px 10px; border-radius: 10px; font-size: 12px; background: #52606d; white-space: nowrap; }
#conn[data-state="live"] { background: #2b8a3e; }
#conn[data-state="reconnecting"] { background: #d9480f; }
main { padding: 12px 16px 24px; }
h2 { font-size: 14px; margin: 18px 0 6px; }
#charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 12px; }
.chart { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px 4px; }
.chart figcaption { display: flex; flex-wrap: wrap; justify-content: space-between; gap: 2px 10px; }
.chart .title { font-weight: 600; }
.chart .scale { margin-left: 6px; padding: 0 5px; border: 1px solid var(--line); border-radius: 3px; background: none;
                color: var(--muted); font-size: 11px; cursor: pointer; }
.chart .scale[aria-pressed="true"] { color: var(--fg); border-color: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 0 10px; color: var(--muted); font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
.legend b { color: var(--fg); font-weight: 600; margin-left: 3px; }
.chart svg { display: block; width: 100%; height: auto; }
.chart .empty { fill: var(--muted); font-size: 12px; }
svg text { font-size: 10px; fill: var(--muted); }
.gridline { stroke: var(--grid); stroke-width: 1; }
.series { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
.mark-checkpoint { stroke: #adb5bd; stroke-dasharray: 2 4; }
.mark-restart { stroke: #e03131; stroke-width: 1.5; }
.scroll { max-height: 330px; overflow: auto; border: 1px solid var(--line); }
.scroll table { border: 0; }
.panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0 16px; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); }
th, td { padding: 3px 8px; border-bottom: 1px solid var(--grid); text-align: right; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; background: #fafbfc; }
th:first-child, td:first-child, .text { text-align: left; }
td.text { white-space: normal; overflow-wrap: anywhere; }
tr[data-state="late"] td { color: #c92a2a; }
tr[data-event="restart"] td, tr[data-event="checkpoint_failed"] td { color: #c92a2a; }
.none td { color: var(--muted); text-align: left; }
</style>
</head>
<body data-state="connecting">
<header>
  <h1>dptrain <span id="job"></span></h1>
  <div id="summary"></div>
  <span id="conn" data-state="connecting">connecting</span>
</header>
<main>
  <section id="charts" aria-label="curves"></section>
  <div class="panels">
    <section>
      <h2>Ranks</h2>
      <table id="ranks"><thead></thead><tbody></tbody></table>
    </section>
    <section>
      <h2>Checkpoints and restarts</h2>
      <div class="scroll"><table id="events">
        <thead><tr><th>time</th><th>event</th><th>step</th><th class="text">detail</th></tr></thead>
        <tbody></tbody></table></div>
    </section>
  </div>
  <h2>Results</h2>
  <table id="results"><thead><tr><th>event</th><th>step</th><th class="text">figures</th></tr></thead><tbody></tbody></table>
</main>
<script>
'use strict';
const POLL_MS = 2000, TIMEOUT_MS = 4000, LATE_S = 10;
const PALETTE = ['#1c7ed6', '#e8590c', '#2f9e44', '#9c36b5', '#f59f00', '#0c8599', '#c2255c'];
// One row per chart: the records' event and key of each curve. `core` charts are drawn, empty,
// before any data has arrived; the others appear when their task logs their figures.
const CHARTS = [
  {id: 'loss', title: 'Loss', core: true, series: [
    {event: 'step', key: 'loss', label: 'train'},
    {event: 'epoch', key: 'train_loss', label: 'train (epoch)'},
    {event: 'epoch', key: 'val_loss', label: 'validation'}]},
  {id: 'accuracy', title: 'Accuracy', core: true, percent: true, series: [
    {event: 'step', key: 'accuracy', label: 'train'},
    {event: 'epoch', key: 'train_accuracy', label: 'train (epoch)'},
    {event: 'epoch', key: 'val_accuracy', label: 'validation'},
    {event: 'round', key: 'val_accuracy', label: 'validation (round)'}]},
  {id: 'lr', title: 'Learning rate', core: true, series: [
    {event: 'step', key: 'lr', label: 'lr'},
    {event: 'step', key: 'lr_g', label: 'generator'},
    {event: 'step', key: 'lr_d', label: 'discriminator'}]},
  {id: 'throughput', title: 'Throughput', core: true, series: [
    {event: 'step', key: 'samples_per_s', label: 'samples/s'},
    {event: 'step', key: 'tokens_per_s', label: 'tokens/s'}]},
  {id: 'gan_loss', title: 'GAN losses', series: [
    {event: 'step', key: 'd_loss', label: 'discriminator'},
    {event: 'step', key: 'g_loss', label: 'generator'},
    {event: 'epoch', key: 'd_loss', label: 'D (epoch)'},
    {event: 'epoch', key: 'g_loss', label: 'G (epoch)'}]},
  {id: 'gan_modes', title: 'GAN mode coverage', series: [
    {event: 'epoch', key: 'modes_covered', label: 'modes covered'},
    {event: 'epoch', key: 'modes', label: 'modes'}]},
  {id: 'gan_quality', title: 'GAN high-quality samples', percent: true, series: [
    {event: 'epoch', key: 'high_quality', label: 'high quality'}]},
  {id: 'pseudo_labels', title: 'Self-training: pseudo-labels', series: [
    {event: 'round', key: 'pseudo_labels', label: 'pseudo-labels'},
    {event: 'round', key: 'unlabeled_left', label: 'unlabelled left'}]},
  {id: 'pseudo_accuracy', title: 'Self-training: accuracy', percent: true, series: [
    {event: 'round', key: 'pseudo_accuracy', label: 'pseudo-labels right'},
    {event: 'round', key: 'val_accuracy', label: 'validation'}]},
];
const RANK_KEYS = ['rank', 'host', 'pid', 'step', 'heartbeat_age_s'];
const SVGNS = 'http://www.w3.org/2000/svg';

// What the page knows. Records and events of an earlier coordinator (before a supervisor
// restart) are carried over where the new one has nothing of its own.
const state = {status: null, history: null, instance: null, carried: [], carriedEvents: [],
               failures: 0, lastOk: null, downSince: null, log: {}};

function el(tag, attrs, text, ns) {
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
const svg = (tag, attrs, text) => el(tag, attrs, text, SVGNS);
// Puts `rows` in a table body, or one row saying `empty` across `columns` when there are none.
function fillRows(body, rows, columns, empty) {
  if (!rows.length) {
    const tr = el('tr', {class: 'none'});
    tr.append(el('td', {colspan: columns}, empty));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}
const num = v => typeof v === 'number' && isFinite(v);

function fmt(v, percent) {
  if (!num(v)) return '—';
  if (percent) return (100 * v).toFixed(Math.abs(v) >= 0.1 ? 1 : 2) + '%';
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  if (a === 0) return '0';
  if (a < 1e-3) return v.toExponential(1);
  return String(+v.toPrecision(3));
}
function clock(t) { return num(t) ? new Date(t * 1000).toLocaleTimeString() : ''; }
function age(s) { return !num(s) ? '—' : s < 10 ? s.toFixed(1) + ' s' : s < 120 ? Math.round(s) + ' s' : Math.round(s / 60) + ' min'; }

function niceTicks(lo, hi, n) {
  if (!(hi > lo)) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
  const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
  const step = mag * (r >= 7.5 ? 10 : r >= 3.5 ? 5 : r >= 1.5 ? 2 : 1);
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 0.5; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

function records() {
  const own = state.history ? state.history.records : [];
  const first = own.reduce((m, r) => num(r.step) ? Math.min(m, r.step) : m, Infinity);
  return state.carried.filter(r => num(r.step) && r.step < first).concat(own);
}
function events() {
  const own = state.history ? state.history.events : [];
  const seen = new Set(own.map(e => e.event + '|' + e.step + '|' + e.time));
  return state.carriedEvents.filter(e => !seen.has(e.event + '|' + e.step + '|' + e.time)).concat(own)
      .sort((a, b) => (a.time || 0) - (b.time || 0));
}

// Drawn at its size on screen (W pixels wide), so that text keeps its size at any width.
function drawChart(def, recs, evs, W) {
  const H = 190, L = 50, R = 10, T = 8, B = 22, log = !!state.log[def.id];
  const series = def.series.map((s, i) => ({...s, color: PALETTE[i % PALETTE.length],
    points: recs.filter(r => r.event === s.event && num(r.step) && num(r[s.key]) && (!log || r[s.key] > 0))
                .map(r => [r.step, log ? Math.log10(r[s.key]) : r[s.key]])}));
  const total = series.reduce((n, s) => n + s.points.length, 0);
  const fig = el('figure', {class: 'chart', id: 'chart-' + def.id, 'data-chart': def.id, 'data-points': total});
  const cap = el('figcaption');
  const title = el('span', {class: 'title'}, def.title);
  const scale = el('button', {class: 'scale', type: 'button', 'aria-pressed': log, title: 'logarithmic scale'}, 'log');
  scale.addEventListener('click', () => { state.log[def.id] = !log; render(); });
  title.append(scale);
  cap.append(title);
  const legend = el('span', {class: 'legend'});
  for (const s of series) {
    if (!s.points.length) continue;
    const item = el('span', {'data-key': s.key, 'data-event': s.event});
    const swatch = el('i');
    swatch.style.background = s.color;
    item.append(swatch, s.label);
    const last = s.points[s.points.length - 1][1];
    item.append(el('b', null, fmt(log ? Math.pow(10, last) : last, def.percent)));
    legend.append(item);
  }
  cap.append(legend);
  fig.append(cap);
  const box = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': def.title});
  fig.append(box);
  if (!total) {
    box.append(svg('text', {class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle'}, 'waiting for data'));
    return fig;
  }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) for (const [x, y] of s.points) {
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  const yt = niceTicks(y0, y1, 4), xt = niceTicks(x0, x1, 5).filter(v => v >= x0 && v <= x1);
  y0 = Math.min(y0, yt[0]); y1 = Math.max(y1, yt[yt.length - 1]);
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => T + (1 - (y - y0) / (y1 - y0 || 1)) * (H - T - B);
  for (const v of yt) {
    box.append(svg('line', {class: 'gridline', x1: L, x2: W - R, y1: sy(v), y2: sy(v)}));
    box.append(svg('text', {x: L - 4, y: sy(v) + 3, 'text-anchor': 'end'}, fmt(log ? Math.pow(10, v) : v, def.percent)));
  }
  for (const v of xt) box.append(svg('text', {x: sx(v), y: H - 6, 'text-anchor': 'middle'}, fmt(v)));
  box.append(svg('text', {x: L - 4, y: H - 6, 'text-anchor': 'end'}, 'step'));
  for (const e of evs) {
    if (!num(e.step) || e.step < x0 || e.step > x1) continue;
    if (e.event !== 'checkpoint' && e.event !== 'restart') continue;
    const mark = svg('line', {class: 'mark mark-' + e.event, 'data-step': e.step,
                              x1: sx(e.step), x2: sx(e.step), y1: T, y2: H - B});
    mark.append(svg('title', null, e.event + ' at step ' + e.step));
    box.append(mark);
  }
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map(([x, y], i) => (i ? 'L' : 'M') + sx(x).toFixed(1) + ' ' + sy(y).toFixed(1)).join('');
    const path = svg('path', {class: 'series', 'data-event': s.event, 'data-key': s.key,
                              'data-points': s.points.length, d: d, stroke: s.color});
    path.append(svg('title', null, s.label));
    box.append(path);
    if (s.event !== 'step' || s.points.length <= 20)  // sparse curves (epochs, rounds): a dot per point
      for (const [x, y] of s.points) box.append(svg('circle', {cx: sx(x), cy: sy(y), r: 2.2, fill: s.color}));
  }
  return fig;
}

function chartWidth(box) {
  const total = box.clientWidth || 1200, gap = 12, min = 270, chrome = 22;  // padding and border
  const cols = Math.max(1, Math.floor((total + gap) / (min + gap)));
  return Math.max(min - chrome, Math.floor((total - gap * (cols - 1)) / cols) - chrome);
}

function renderCharts(recs, evs) {
  const box = document.getElementById('charts'), W = chartWidth(box);
  const drawn = CHARTS.map(def => drawChart(def, recs, evs, W));
  const any = drawn.some(f => +f.dataset.points > 0);
  box.replaceChildren(...drawn.filter((f, i) => +f.dataset.points > 0 || (!any && CHARTS[i].core)));
}

function renderSummary() {
  const s = state.status, box = document.getElementById('summary');
  document.getElementById('job').textContent = s ? s.job : state.history ? state.history.job : '';
  if (!s) return;
  const items = [['phase', s.phase], ['step', s.step], ['epoch', s.epoch], ['loss', fmt(s.loss)],
                 ['accuracy', fmt(s.accuracy, true)], ['lr', fmt(s.lr)], ['samples/s', fmt(s.samples_per_s)],
                 ['ranks', s.ranks_alive], ['restarts', s.restarts],
                 ['checkpoint', s.last_checkpoint && s.last_checkpoint.step >= 0 ? 'step ' + s.last_checkpoint.step : '—'],
                 ['uptime', age(s.uptime_s)]];
  box.replaceChildren(...items.map(([k, v]) => {
    const d = el('div', {class: 'kv', 'data-key': k});
    d.append(el('span', null, k), String(v));
    return d;
  }));
}

function renderRanks() {
  const table = document.getElementById('ranks'), ranks = state.status ? state.status.ranks || [] : [];
  // Keys a newer coordinator reports per rank (a timing split, say) get columns of their own.
  const extra = [];
  for (const r of ranks) for (const k of Object.keys(r)) if (!RANK_KEYS.includes(k) && !extra.includes(k)) extra.push(k);
  const head = el('tr');
  for (const h of ['rank', 'host', 'pid', 'step', 'heartbeat', 'state', ...extra]) head.append(el('th', null, h));
  table.tHead.replaceChildren(head);
  const rows = ranks.map(r => {
    const late = !num(r.heartbeat_age_s) || r.heartbeat_age_s > LATE_S;
    const st = state.failures ? 'unknown' : late ? 'late' : state.status.phase === 'stopping' ? 'stopping' : 'ok';
    const tr = el('tr', {'data-rank': r.rank, 'data-step': r.step, 'data-state': st});
    for (const v of [r.rank, r.host, r.pid, r.step, age(r.heartbeat_age_s), st])
      tr.append(el('td', null, v));
    for (const k of extra) tr.append(el('td', null, typeof r[k] === 'object' ? JSON.stringify(r[k]) : fmt(r[k])));
    return tr;
  });
  fillRows(table.tBodies[0], rows, 6, state.status ? 'no rank registered' : 'no status yet');
}

function detail(e) {
  if (e.event === 'checkpoint') return (e.path || '').split('/').pop() + (e.found_at_start ? ' (found at start)' : '');
  if (e.event === 'restart' || e.event === 'stop') return e.reason || '';
  if (e.event === 'checkpoint_failed') return e.error || '';
  if (e.event === 'start') return e.world + ' rank' + (e.world === 1 ? '' : 's') +
      (e.records_from_file ? ', ' + e.records_from_file + ' earlier records read from the metrics file' : '');
  if (e.event === 'coordinator_restart') return 'the coordinator restarted; earlier curves kept';
  return '';
}

function renderEvents(evs) {
  const rows = evs.slice(-50).reverse().map(e => {
    const tr = el('tr', {'data-event': e.event, 'data-step': e.step});
    tr.append(el('td', null, clock(e.time)), el('td', null, String(e.event || '').replace('_', ' ')),
              el('td', null, num(e.step) && e.step >= 0 ? e.step : '—'), el('td', {class: 'text'}, detail(e)));
    return tr;
  });
  fillRows(document.querySelector('#events tbody'), rows, 4, 'none yet');
}

function renderResults(recs) {
  const rows = recs.filter(r => r.event && r.event !== 'step' && r.event !== 'epoch').slice(-50).reverse().map(r => {
    const tr = el('tr', {'data-event': r.event, 'data-step': r.step});
    const figures = Object.entries(r).filter(([k]) => k !== 'event' && k !== 'step')
        .map(([k, v]) => k + ' ' + (num(v) ? (/accuracy|high_quality/.test(k) ? fmt(v, true) : fmt(v)) : v)).join(', ');
    tr.append(el('td', null, r.event), el('td', null, num(r.step) ? r.step : '—'), el('td', {class: 'text'}, figures));
    return tr;
  });
  fillRows(document.querySelector('#results tbody'), rows, 3,
           'test results, GAN coverage and self-training rounds appear here');
}

function render() {
  const recs = records(), evs = events();
  renderSummary();
  renderCharts(recs, evs);
  renderRanks();
  renderEvents(evs);
  renderResults(recs);
  const conn = document.getElementById('conn');
  const st = state.failures ? 'reconnecting' : state.lastOk ? 'live' : 'connecting';
  conn.dataset.state = st;
  conn.textContent = st === 'live' ? 'live · ' + new Date(state.lastOk).toLocaleTimeString()
      : st === 'reconnecting' ? 'coordinator unreachable since ' + new Date(state.downSince).toLocaleTimeString() +
        ' · retrying' : 'connecting';
  document.body.dataset.state = st;
  document.body.dataset.records = recs.length;
  document.body.dataset.ranks = state.status ? (state.status.ranks || []).length : 0;
}

async function getJson(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const r = await fetch(path, {cache: 'no-store', signal: ctl.signal});
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

async function poll() {
  try {
    const [status, history] = await Promise.all([getJson('status'), getJson('history')]);
    if (state.instance && history.instance !== state.instance) {
      // A new coordinator (the supervisor restarted): keep what the old one showed.
      state.carried = records();
      state.carriedEvents = events().concat([{event: 'coordinator_restart', step: null, time: Date.now() / 1000}]);
    }
    state.instance = history.instance;
    state.status = status;
    state.history = history;
    state.failures = 0;
    state.lastOk = Date.now();
    state.downSince = null;
  } catch (err) {
    if (!state.failures) state.downSince = Date.now();
    state.failures++;
  }
  try {
    render();
  } catch (err) {
    console.error(err);
  }
  setTimeout(poll, state.failures ? Math.min(10000, POLL_MS * Math.pow(2, Math.min(state.failures, 3))) : POLL_MS);
}

window.addEventListener('resize', render);
render();
poll();
</script>
</body>
</html>
)html";
}  // namespace

std::string_view dashboard_page() { return page; }

}  // namespace dptrain
