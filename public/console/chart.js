// Line charts in plain SVG: a handful of series over the last minutes, redrawn each second.

const SVG = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 110;
const PAD = { left: 34, right: 4, top: 6, bottom: 14 };
export const COLORS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#4b5563', '#db2777'];

function el(name, attrs) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** A short number: 1.2k, 3.4M, 12, 0.35. */
export function short(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  const a = Math.abs(value);
  if (a >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (a >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  if (a >= 10 || value === 0) return value.toFixed(0);
  return value.toFixed(2);
}

/**
 * Draws `series` ([{name, points: [[t, v]], total}]) on `svg` between `from` and `to` (epoch ms);
 * a point with a null value breaks the line.
 */
export function drawChart(svg, series, { from, to }) {
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.replaceChildren();
  let max = 0;
  for (const s of series) for (const [, v] of s.points) if (v !== null && v > max) max = v;
  max = max === 0 ? 1 : max * 1.1;
  const x = (t) => PAD.left + ((t - from) / Math.max(1, to - from)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }));
  svg.append(el('line', { class: 'axis', x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: y(0) }));
  const top = el('text', { class: 'label', x: PAD.left - 3, y: PAD.top + 8, 'text-anchor': 'end' });
  top.textContent = short(max);
  const zero = el('text', { class: 'label', x: PAD.left - 3, y: y(0), 'text-anchor': 'end' });
  zero.textContent = '0';
  const left = el('text', { class: 'label', x: PAD.left, y: H - 2 });
  const span = (to - from) / 1000;
  left.textContent = span >= 90 ? `-${Math.round(span / 60)}m` : `-${Math.round(span)}s`;
  const right = el('text', { class: 'label', x: W - PAD.right, y: H - 2, 'text-anchor': 'end' });
  right.textContent = 'now';
  svg.append(top, zero, left, right);
  series.forEach((s, i) => {
    let d = '';
    let pen = false;
    for (const [t, v] of s.points) {
      if (v === null || t < from) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    if (d !== '') svg.append(el('path', { d, stroke: s.color ?? COLORS[i % COLORS.length], class: s.total ? 'total' : '', 'data-series': s.name }));
  });
}
