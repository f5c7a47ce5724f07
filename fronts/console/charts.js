// Line charts as plain SVG: one chart is a <figure> holding an <svg> and
// a legend; drawing it again replaces its lines. Time runs along x over a
// fixed window ending now; y runs from 0 to the largest value shown.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490"];
const WIDTH = 400, HEIGHT = 160, LEFT = 44, BOTTOM = 18, TOP = 8, RIGHT = 8;

function svgNode(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// A short label for a number: 1234 → 1.23k, 0.00012 → 0.00012.
function shortNumber(value) {
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6) return (value / 1e6).toPrecision(3) + "M";
  if (magnitude >= 1e3) return (value / 1e3).toPrecision(3) + "k";
  return Number(value.toPrecision(3)).toString();
}

// Makes an empty chart titled `title` (its values in `unit`) in `parent`;
// returns the <figure>.
function makeChart(parent, id, title, unit) {
  const figure = document.createElement("figure");
  figure.className = "card";
  figure.id = id;
  figure.dataset.unit = unit;
  const caption = document.createElement("figcaption");
  const heading = document.createElement("h3");
  heading.textContent = title;
  caption.append(heading);
  const svg = svgNode("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img" });
  svg.setAttribute("aria-label", `${title}, over the last minutes`);
  const legend = document.createElement("ul");
  legend.className = "legend";
  figure.append(caption, svg, legend);
  parent.append(figure);
  return figure;
}

// Draws `series` ([{label, points: [[unixSeconds, value], ...]}]) over the
// `windowSeconds` ending at `now`.
function drawChart(figure, series, now, windowSeconds) {
  const svg = figure.querySelector("svg");
  const legend = figure.querySelector(".legend");
  svg.replaceChildren();
  legend.replaceChildren();
  const start = now - windowSeconds;
  const values = series.flatMap((s) => s.points.filter(([t, v]) => t >= start && Number.isFinite(v)).map(([, v]) => v));
  const top = Math.max(...values, 0) || 1;
  const x = (t) => LEFT + ((t - start) / windowSeconds) * (WIDTH - LEFT - RIGHT);
  const y = (v) => HEIGHT - BOTTOM - (v / top) * (HEIGHT - BOTTOM - TOP);
  svg.append(svgNode("line", { class: "axis", x1: LEFT, y1: y(0), x2: WIDTH - RIGHT, y2: y(0) }));
  svg.append(svgNode("line", { class: "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: y(0) }));
  const label = (text, attributes) => {
    const node = svgNode("text", attributes);
    node.textContent = text;
    svg.append(node);
  };
  label(shortNumber(top) + " " + figure.dataset.unit, { x: 2, y: TOP + 8 });
  label("0", { x: LEFT - 12, y: y(0) });
  label(`-${Math.round(windowSeconds / 60)} min`, { x: LEFT, y: HEIGHT - 4 });
  label("now", { x: WIDTH - RIGHT - 22, y: HEIGHT - 4 });
  series.forEach((s, index) => {
    const colour = COLOURS[index % COLOURS.length];
    const shown = s.points.filter(([t, v]) => t >= start && Number.isFinite(v));
    if (shown.length > 0) {
      const points = shown.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      svg.append(svgNode("polyline", { points, stroke: colour, "data-series": s.label }));
    }
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    const last = shown.length > 0 ? shortNumber(shown[shown.length - 1][1]) : "–";
    item.append(swatch, `${s.label}: ${last} ${figure.dataset.unit}`);
    legend.append(item);
  });
}
