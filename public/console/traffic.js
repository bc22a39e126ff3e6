// The Traffic panel: live charts over the last 15 minutes, drawn from every instance's samples
// (GET /instances/samples). The samples hold running totals: a rate is the difference of two
// samples of one instance over their time; the cluster's line adds the instances up per second.

import { COLORS, drawChart, short } from './chart.js';
import { $, h } from './dom.js';

const WINDOW_MS = 15 * 60_000;
const CHARTS = [
  { id: 'published', title: 'publishes/s', rate: 'published' },
  { id: 'delivered', title: 'deliveries/s', rate: 'delivered' },
  { id: 'group', title: 'commit group size', ratio: ['published', 'commits'] },
  { id: 'publishP99', title: 'publish p99 (ms)', gauge: 'publishP99', worst: true },
  { id: 'lag', title: 'feed lag (ms)', gauge: 'lagMs', worst: true },
  { id: 'webhookP99', title: 'webhook p99 (ms)', gauge: 'webhookP99', worst: true },
  { id: 'rpcP99', title: 'rpc p99 (ms)', gauge: 'rpcP99', worst: true },
  { id: 'loop', title: 'event-loop delay (ms)', gauge: 'loopMs', worst: true },
  { id: 'connections', title: 'connections', gauge: 'connections' },
  { id: 'errors', title: 'errors answered/s', rate: 'errors' },
];

/** instance -> samples, oldest first. */
const series = new Map();
let built = false;

/** Adds samples (from GET /instances/samples) and forgets those past the window. */
export function addSamples(samples, now = Date.now()) {
  for (const s of samples) {
    const list = series.get(s.instance) ?? [];
    if (list.length === 0 || s.at > list[list.length - 1].at) list.push(s);
    series.set(s.instance, list);
  }
  for (const [id, list] of series) {
    while (list.length > 0 && list[0].at < now - WINDOW_MS) list.shift();
    if (list.length === 0) series.delete(id);
  }
}

/** Each instance's newest sample. */
export function latestSamples() {
  return new Map([...series].map(([id, list]) => [id, list[list.length - 1]]));
}

function build() {
  const box = $('#charts');
  for (const chart of CHARTS) {
    box.append(
      h('div', { class: 'chart', id: `chart-${chart.id}` },
        h('h4', {}, h('span', {}, chart.title), h('span', { class: 'now', 'data-now': '' }, '–')),
        document.createElementNS('http://www.w3.org/2000/svg', 'svg'),
        h('div', { class: 'legend' })),
    );
  }
  $('#traffic-scope').addEventListener('change', () => renderTraffic());
  built = true;
}

/** One instance's points for a chart: [t, value, num, den] (num/den for ratios). */
function pointsOf(list, chart) {
  const points = [];
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1];
    const b = list[i];
    const dt = (b.at - a.at) / 1000;
    if (chart.gauge) {
      points.push([b.at, b[chart.gauge]]);
      continue;
    }
    const key = chart.rate ?? chart.ratio[0];
    const d = b[key] - a[key];
    // A restart starts the totals again from 0: no rate across it.
    if (d < 0 || dt <= 0) {
      points.push([b.at, null]);
      continue;
    }
    if (chart.rate) points.push([b.at, d / dt]);
    else {
      const den = b[chart.ratio[1]] - a[chart.ratio[1]];
      points.push([b.at, den > 0 ? d / den : null, d, den]);
    }
  }
  return points;
}

/** The cluster's line: the instances' points added up (or the worst of them) per second. */
function clusterOf(perInstance, chart) {
  const buckets = new Map();
  for (const points of perInstance) {
    for (const [t, v, n, d] of points) {
      const key = Math.floor(t / 1000) * 1000;
      const b = buckets.get(key) ?? { v: null, n: 0, d: 0 };
      if (v !== null) b.v = chart.worst ? Math.max(b.v ?? 0, v) : (b.v ?? 0) + v;
      b.n += n ?? 0;
      b.d += d ?? 0;
      buckets.set(key, b);
    }
  }
  return [...buckets].sort(([a], [b]) => a - b).map(([t, b]) => [t, chart.ratio ? (b.d > 0 ? b.n / b.d : null) : b.v]);
}

/** Redraws every chart: the cluster (bold) and each instance, or one instance alone. */
export function renderTraffic(now = Date.now()) {
  if (!built) build();
  const scope = $('#traffic-scope');
  const ids = [...series.keys()].sort();
  for (const id of ids) if (![...scope.options].some((o) => o.value === id)) scope.append(h('option', { value: id }, id));
  const only = scope.value;
  const colorOf = (id) => COLORS[(ids.indexOf(id) + 1) % COLORS.length];
  // The last 15 minutes, or since the oldest sample (at least a minute): a young cluster fills the width.
  const oldest = Math.min(...ids.map((id) => series.get(id)[0].at), now);
  const from = Math.max(now - WINDOW_MS, Math.min(oldest, now - 60_000));
  for (const chart of CHARTS) {
    const per = ids.map((id) => ({ id, points: pointsOf(series.get(id), chart) }));
    const lines = only
      ? per.filter((p) => p.id === only).map((p) => ({ name: p.id, points: p.points, total: true, color: colorOf(p.id) }))
      : [{ name: 'cluster', points: clusterOf(per.map((p) => p.points), chart), total: true, color: COLORS[0] }, ...per.map((p) => ({ name: p.id, points: p.points, color: colorOf(p.id) }))];
    const node = $(`#chart-${chart.id}`);
    drawChart(node.querySelector('svg'), lines, { from, to: now });
    const head = lines[0]?.points;
    const last = head?.length ? head[head.length - 1][1] : null;
    node.querySelector('[data-now]').textContent = short(last);
    node.querySelector('[data-now]').dataset.value = last ?? '';
    node.querySelector('.legend').replaceChildren(...lines.map((l) => h('span', {}, legendMark(l.color), l.name)));
  }
}

function legendMark(color) {
  const mark = h('i');
  mark.style.background = color;
  return mark;
}
