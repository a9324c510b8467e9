// Small charts drawn as inline SVG (no library, no inline styles: colours come from style.css
// classes, so the page's Content-Security-Policy stays strict).

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A round axis maximum (1, 2, 5 × 10^k) at or above ``value``. */
function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/**
 * Vertical grouped bars: ``categories`` along the x axis, one bar per series in each.
 * series: [{ name, cls, values: number[] }]. Returns an <svg> with a <title> for screen
 * readers and a data-bar attribute on every bar (category and series) for tests.
 */
export function columnChart({ title, categories, series, width = 720, height = 240 }) {
  const pad = { top: 16, right: 12, bottom: 28, left: 40 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const top = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const slot = plotW / Math.max(1, categories.length);
  const barW = Math.max(2, (slot * 0.8) / Math.max(1, series.length));
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const grid = [0, 0.5, 1].map((f) => {
    const value = Math.round(top * f * 10) / 10;
    return svg("g", { class: "chart-grid" },
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }),
      svg("text", { x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" }, value));
  });
  const bars = categories.map((category, i) => svg("g", {},
    series.map((s, j) => {
      const value = s.values[i] || 0;
      const x = pad.left + i * slot + slot * 0.1 + j * barW;
      return svg("rect", { class: `bar ${s.cls}`, x, y: y(value), width: barW,
        height: Math.max(0, pad.top + plotH - y(value)),
        "data-bar": `${category}:${s.name}`, "data-value": value },
      svg("title", {}, `${category}: ${s.name} — ${value}`));
    }),
    svg("text", { class: "chart-label", x: pad.left + i * slot + slot / 2,
      y: height - pad.bottom + 16, "text-anchor": "middle" }, category)));
  return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": title, preserveAspectRatio: "xMidYMid meet" },
  svg("title", {}, title), grid, bars);
}

/** Horizontal bars, one per row: rows [{ label, value }] (largest first is up to the caller). */
export function barList({ title, rows, width = 900, rowHeight = 24, cls = "bar-primary" }) {
  const labelW = 300;
  const valueW = 40;
  const plotW = width - labelW - valueW;
  const top = Math.max(1, ...rows.map((r) => r.value));
  const height = Math.max(1, rows.length) * rowHeight + 4;
  const items = rows.map((row, i) => {
    const y = i * rowHeight + 2;
    const label = row.label.length > 48 ? row.label.slice(0, 47) + "…" : row.label;
    return svg("g", {},
      svg("text", { class: "chart-label", x: labelW - 8, y: y + rowHeight * 0.65,
        "text-anchor": "end" }, label, svg("title", {}, row.label)),
      svg("rect", { class: `bar ${cls}`, x: labelW, y: y + 3, height: rowHeight - 8,
        width: Math.max(1, (row.value / top) * plotW), "data-bar": row.label,
        "data-value": row.value }),
      svg("text", { class: "chart-value", x: labelW + (row.value / top) * plotW + 6,
        y: y + rowHeight * 0.65 }, row.value));
  });
  return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": title }, svg("title", {}, title), items);
}
