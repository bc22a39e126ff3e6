// The few DOM helpers the console's panels share. Text goes in as text, never as HTML:
// channel names, uids and error messages come from the internet.

/** An element with attributes (`class`, `data-*`, …) and children (nodes or text). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}

/** A table cell holding a number, right-aligned. */
export function num(value) {
  return h('td', { class: 'num' }, value === null || value === undefined ? '–' : Number(value).toLocaleString('en-US'));
}

/** Replaces a table body's rows. */
export function fillRows(table, rows) {
  table.tBodies[0].replaceChildren(...rows);
}

/** "3h 4m", "52s": how long ago or for how long. */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** A badge: ok, warn or bad. */
export function badge(text, kind) {
  return h('span', { class: `badge ${kind}` }, text);
}

export const $ = (selector) => document.querySelector(selector);
