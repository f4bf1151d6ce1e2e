// The box editor of the label view: the image at full resolution under an SVG layer in
// image pixels (viewBox = the image size), zoomed by sizing the stage. Boxes are moved
// by dragging them, resized by their corner handles, drawn by dragging on the image.
// A box: {box: [x1, y1, x2, y2] (image pixels), label, score, from (index of the
// predicted box it started as, or null), changed}.

import { h, svg } from "./dom.js";

const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4"];
const MIN_SIZE = 2; // px: a smaller drawn box is a click, not a box
const CORNERS = ["nw", "ne", "sw", "se"];

const round = (v) => Math.round(v * 100) / 100;
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

export class BoxEditor {
  constructor({ src, width, height, classes, boxes, onChange }) {
    this.width = width;
    this.height = height;
    this.classes = classes;
    this.boxes = boxes;
    this.onChange = onChange || (() => {});
    this.selected = boxes.length ? 0 : -1;
    this.classIndex = 0;
    this.zoom = 1;
    this.drag = null;
    this.image = h("img", { src, alt: "frame", class: "frame", draggable: "false", width, height });
    this.layer = svg("svg", {
      class: "boxes",
      id: "box-layer",
      viewBox: `0 0 ${width} ${height}`,
      preserveAspectRatio: "none",
    });
    this.stage = h("div", { class: "stage", id: "stage" }, this.image, this.layer);
    this.layer.addEventListener("pointerdown", (ev) => this.down(ev));
    this.layer.addEventListener("pointermove", (ev) => this.move(ev));
    this.layer.addEventListener("pointerup", (ev) => this.up(ev));
    this.layer.addEventListener("pointercancel", (ev) => this.up(ev));
    this.setZoom(1);
  }

  color(label) {
    const i = this.classes.indexOf(label);
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
  }

  setZoom(zoom) {
    this.zoom = clamp(zoom, 0.05, 32);
    this.stage.style.width = `${this.width * this.zoom}px`;
    this.stage.style.height = `${this.height * this.zoom}px`;
    this.render();
  }

  // The zoom at which the whole image fits the given area (never above 8x).
  fitZoom(areaWidth, areaHeight) {
    return Math.min(8, areaWidth / this.width, areaHeight / this.height);
  }

  point(ev) {
    const r = this.layer.getBoundingClientRect();
    return {
      x: clamp(((ev.clientX - r.left) * this.width) / r.width, 0, this.width),
      y: clamp(((ev.clientY - r.top) * this.height) / r.height, 0, this.height),
    };
  }

  down(ev) {
    if (ev.button !== 0) return;
    ev.preventDefault();
    const p = this.point(ev);
    const handle = ev.target.closest("[data-corner]");
    const group = ev.target.closest("g.box");
    if (handle) {
      const i = Number(handle.dataset.index);
      this.drag = { mode: "resize", index: i, corner: handle.dataset.corner, start: p, orig: [...this.boxes[i].box] };
    } else if (group) {
      const i = Number(group.dataset.index);
      this.selected = i;
      this.drag = { mode: "move", index: i, start: p, orig: [...this.boxes[i].box] };
    } else {
      const box = { box: [p.x, p.y, p.x, p.y], label: this.classes[this.classIndex], score: null, from: null, changed: true };
      this.boxes.push(box);
      this.selected = this.boxes.length - 1;
      this.drag = { mode: "draw", index: this.selected, start: p, orig: [...box.box] };
    }
    this.layer.setPointerCapture(ev.pointerId);
    this.render();
  }

  move(ev) {
    if (!this.drag) return;
    const p = this.point(ev);
    const d = this.drag;
    const b = this.boxes[d.index];
    const [x1, y1, x2, y2] = d.orig;
    if (d.mode === "move") {
      const dx = clamp(p.x - d.start.x, -x1, this.width - x2);
      const dy = clamp(p.y - d.start.y, -y1, this.height - y2);
      b.box = [x1 + dx, y1 + dy, x2 + dx, y2 + dy].map(round);
    } else if (d.mode === "resize") {
      const nb = [x1, y1, x2, y2];
      if (d.corner.includes("w")) nb[0] = p.x;
      if (d.corner.includes("e")) nb[2] = p.x;
      if (d.corner.includes("n")) nb[1] = p.y;
      if (d.corner.includes("s")) nb[3] = p.y;
      b.box = nb.map(round);
    } else {
      b.box = [d.start.x, d.start.y, p.x, p.y].map(round);
    }
    this.render();
  }

  up(ev) {
    if (!this.drag) return;
    this.move(ev);
    const d = this.drag;
    this.drag = null;
    const b = this.boxes[d.index];
    const [x1, y1, x2, y2] = b.box;
    b.box = [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)];
    const moved = b.box.some((v, k) => v !== d.orig[k]);
    if (d.mode === "draw" && (b.box[2] - b.box[0] < MIN_SIZE || b.box[3] - b.box[1] < MIN_SIZE)) {
      this.boxes.splice(d.index, 1);
      this.selected = -1;
    } else if (moved) {
      b.changed = true;
    }
    if (this.layer.hasPointerCapture(ev.pointerId)) this.layer.releasePointerCapture(ev.pointerId);
    this.render();
    if (moved || d.mode === "draw") this.onChange();
  }

  select(i) {
    this.selected = this.boxes.length ? (i + this.boxes.length) % this.boxes.length : -1;
    this.render();
    this.onChange();
  }

  removeSelected() {
    if (this.selected < 0) return;
    this.boxes.splice(this.selected, 1);
    this.selected = Math.min(this.selected, this.boxes.length - 1);
    this.render();
    this.onChange();
  }

  // Number key n: the class of new boxes, and of the selected box when there is one.
  pickClass(index) {
    if (index < 0 || index >= this.classes.length) return;
    this.classIndex = index;
    const b = this.boxes[this.selected];
    if (b && b.label !== this.classes[index]) {
      b.label = this.classes[index];
      b.changed = true;
    }
    this.render();
    this.onChange();
  }

  render() {
    const layer = this.layer;
    while (layer.firstChild) layer.firstChild.remove();
    const px = 1 / this.zoom; // one screen pixel in image pixels
    this.boxes.forEach((b, i) => {
      const [x1, y1, x2, y2] = b.box;
      const w = Math.abs(x2 - x1);
      const ht = Math.abs(y2 - y1);
      const color = this.color(b.label);
      const selected = i === this.selected;
      const text = b.score !== null && b.score !== undefined && !b.changed ? `${b.label} ${b.score.toFixed(2)}` : b.label;
      const g = svg(
        "g",
        { class: selected ? "box selected" : "box", "data-index": i, "data-label": b.label },
        svg("rect", {
          class: "box-rect",
          x: Math.min(x1, x2),
          y: Math.min(y1, y2),
          width: w,
          height: ht,
          stroke: color,
          "stroke-width": selected ? 3 : 2, // screen pixels (non-scaling stroke)
        }),
        svg(
          "text",
          {
            class: "box-label",
            x: Math.min(x1, x2),
            y: Math.min(y1, y2) > 14 * px ? Math.min(y1, y2) - 3 * px : Math.max(y1, y2) + 12 * px,
            "font-size": 12 * px,
            fill: color,
          },
          text,
        ),
      );
      if (selected) {
        const corners = { nw: [x1, y1], ne: [x2, y1], sw: [x1, y2], se: [x2, y2] };
        for (const c of CORNERS) {
          const [cx, cy] = corners[c];
          g.append(
            svg("rect", {
              class: `handle handle-${c}`,
              "data-corner": c,
              "data-index": i,
              x: cx - 4 * px,
              y: cy - 4 * px,
              width: 8 * px,
              height: 8 * px,
            }),
          );
        }
      }
      layer.append(g);
    });
  }
}
