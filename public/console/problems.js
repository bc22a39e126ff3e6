// The Problems panel: what an operator should look at, counted over the live instances
// (since each started), and their last warnings and errors.

import { $, fillRows, h, num } from './dom.js';

const LABELS = { slowConsumers: 'slow consumers cut off', uncaught: 'exceptions nothing caught (bugs)' };

/** Draws the panel from the instances' reports. */
export function renderProblems(instances) {
  const live = instances.filter((i) => i.state !== 'gone' && i.report);
  const counts = new Map([[LABELS.slowConsumers, 0], [LABELS.uncaught, 0]]);
  const codes = new Map();
  const add = (map, key, n) => map.set(key, (map.get(key) ?? 0) + n);
  const recent = [];
  for (const { id, report } of live) {
    add(counts, LABELS.slowConsumers, report.problems.slowConsumers);
    add(counts, LABELS.uncaught, report.problems.uncaught);
    for (const [limit, n] of Object.entries(report.problems.limits)) add(counts, `refused at limit: ${limit}`, n);
    for (const [where, n] of Object.entries(report.problems.dataRefused)) add(counts, `data the database refused: ${where}`, n);
    for (const [code, n] of Object.entries(report.problems.errors)) add(codes, code, n);
    for (const r of report.recent) recent.push({ ...r, instance: id });
  }
  fillRows($('#problem-counts'), [...counts].map(([what, n]) => h('tr', { class: n > 0 ? 'hot' : null }, h('td', {}, what), num(n))));
  const byCode = [...codes].sort((a, b) => b[1] - a[1]);
  fillRows($('#problem-codes'), byCode.length ? byCode.map(([code, n]) => h('tr', { 'data-code': code }, h('td', {}, h('code', {}, code)), num(n))) : [h('tr', {}, h('td', { class: 'muted' }, 'none'))]);
  recent.sort((a, b) => b.at.localeCompare(a.at));
  $('#problem-recent').replaceChildren(
    ...(recent.length ? recent.slice(0, 30).map((r) => h('li', { class: r.level }, `${new Date(r.at).toLocaleTimeString()} ${r.instance} ${r.level.toUpperCase()} ${r.message}${r.error ? `: ${r.error}` : ''}`)) : [h('li', { class: 'muted' }, 'nothing logged')]),
  );
}
