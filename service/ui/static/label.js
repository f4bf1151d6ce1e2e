// Label view: one frame at full resolution with the model's boxes, edited in the box
// editor and saved through PUT v1/samples/{sha256}/labels with the label's origin:
// "prediction" (accepted unchanged), "prediction-changed" (started from the model's
// boxes, changed), "manual" (drawn with no prediction to start from, or rejected).
//
// Keys: Enter accept (save) and next frame; 1-9 class; Delete remove the selected box;
// ←/→ (↑/↓) previous/next frame; Tab next box; Esc deselect; O ok, no defect;
// R reject, unusable; + / - zoom, 0 fit.

import { get, imageUrl, put } from "./api.js";
import { author } from "./auth.js";
import { clear, fmtNumber, h, notice } from "./dom.js";
import { BoxEditor } from "./editor.js";
import { fetchQueue, labelHash, neighbour, queueState } from "./state.js";

export const title = "Label";
export const scope = "label";

// The origin of a save: what the operator did to the model's prediction.
export function originOf(state, boxes, prediction) {
  const predicted = prediction || [];
  if (state === "rejected") return "manual";
  if (state === "ok") return predicted.length ? "prediction-changed" : "prediction";
  const unchanged = boxes.length === predicted.length && boxes.every((b) => b.from !== null && !b.changed);
  if (unchanged) return "prediction";
  return predicted.length ? "prediction-changed" : "manual";
}

function startingBoxes(sample) {
  const current = (sample.labels || []).find((l) => l.version === sample.label_version);
  if (current && current.state === "labelled") {
    return current.boxes.map((b) => ({ box: [...b.box], label: b.label, score: null, from: null, changed: true }));
  }
  return (sample.prediction || []).map((d, i) => ({
    box: [...d.box],
    label: d.label,
    score: d.score ?? null,
    from: i,
    changed: false,
  }));
}

function isTyping(ev) {
  const t = ev.target;
  return t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
}

export function mount(root, route) {
  const [dataset, sha256] = route.parts;
  const box = h("section", { class: "view-label", dataset: { sha256, dataset } });
  root.append(box);
  let editor = null;
  let sample = null;
  let src = null;
  const status = h("p", { id: "label-status", class: "status", role: "status" });

  // The next (1) or previous (-1) frame of the listed queue; past its end, the queue
  // as it is now (saved frames have left it), else back to the queue.
  async function go(step) {
    let next = neighbour(sha256, dataset, step);
    if (!next && step > 0) {
      try {
        await fetchQueue(queueState.filters, 0);
      } catch {
        queueState.items = [];
      }
      next = queueState.items.find((s) => s.sha256 !== sha256 || s.dataset !== dataset) || null;
    }
    location.hash = next ? labelHash(next) : "#/queue";
  }

  async function save(state, then) {
    const body = { author: author(), origin: originOf(state, editor.boxes, sample.prediction) };
    if (state === "ok") body.ok = true;
    else if (state === "rejected") body.rejected = true;
    else body.boxes = editor.boxes.map((b) => ({ box: b.box, label: b.label }));
    status.textContent = "Saving…";
    try {
      const out = await put(`v1/samples/${sha256}/labels`, body, { dataset });
      status.textContent = `Saved: ${out.state}, version ${out.label_version} (${body.origin})`;
      status.dataset.saved = String(out.label_version);
      if (then) await then();
    } catch (err) {
      status.textContent = `Not saved: ${err.message}`;
      status.dataset.error = err.code;
    }
  }

  function sidebar(classes) {
    const classList = h(
      "ol",
      { class: "classes", id: "class-list" },
      classes.map((c, i) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "class-pick", dataset: { index: i }, onclick: () => editor.pickClass(i) },
            i < 9 ? `${i + 1} ` : "",
            c,
          ),
        ),
      ),
    );
    const boxList = h("ul", { class: "box-list", id: "box-list" });
    const refresh = () => {
      clear(boxList);
      editor.boxes.forEach((b, i) => {
        boxList.append(
          h(
            "li",
            { class: i === editor.selected ? "selected" : null, onclick: () => editor.select(i) },
            `${b.label} [${b.box.map((v) => Math.round(v)).join(", ")}]`,
            b.from !== null && !b.changed ? ` ${fmtNumber(b.score, 2)}` : " (edited)",
          ),
        );
      });
      for (const btn of classList.querySelectorAll("button")) {
        btn.classList.toggle("current", Number(btn.dataset.index) === editor.classIndex);
      }
    };
    const button = (id, text, onclick, hint) => h("button", { type: "button", id, onclick, title: hint }, text);
    const panel = h(
      "aside",
      { class: "label-side" },
      h("div", { class: "actions" },
        button("accept", "Accept & next (Enter)", () => save("labelled", () => go(1))),
        button("save", "Save", () => save("labelled")),
        button("mark-ok", "OK, no defect (O)", () => save("ok", () => go(1))),
        button("mark-reject", "Reject, unusable (R)", () => save("rejected", () => go(1))),
        button("delete-box", "Delete box (Del)", () => editor.removeSelected()),
      ),
      h("div", { class: "actions" },
        button("prev", "← Previous", () => go(-1)),
        button("next", "Next →", () => go(1)),
      ),
      h("div", { class: "actions zoom" },
        button("zoom-out", "−", () => editor.setZoom(editor.zoom / 1.25), "zoom out (-)"),
        button("zoom-fit", "Fit", () => fit(), "fit (0)"),
        button("zoom-1", "1:1", () => editor.setZoom(1), "full resolution"),
        button("zoom-in", "+", () => editor.setZoom(editor.zoom * 1.25), "zoom in (+)"),
      ),
      status,
      h("h2", {}, "Class (number keys)"),
      classList,
      h("h2", {}, "Boxes"),
      boxList,
    );
    return { panel, refresh };
  }

  let viewport = null;
  const fit = () => editor.setZoom(editor.fitZoom(viewport.clientWidth - 4, viewport.clientHeight - 4));

  function onKey(ev) {
    if (!editor || isTyping(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (k === "Enter") save("labelled", () => go(1));
    else if (/^[1-9]$/.test(k)) editor.pickClass(Number(k) - 1);
    else if (k === "Delete" || k === "Backspace") editor.removeSelected();
    else if (k === "ArrowRight" || k === "ArrowDown") go(1);
    else if (k === "ArrowLeft" || k === "ArrowUp") go(-1);
    else if (k === "Tab") editor.select(editor.selected + (ev.shiftKey ? -1 : 1));
    else if (k === "Escape") editor.select(-1);
    else if (k === "o" || k === "O") save("ok", () => go(1));
    else if (k === "r" || k === "R") save("rejected", () => go(1));
    else if (k === "+" || k === "=") editor.setZoom(editor.zoom * 1.25);
    else if (k === "-") editor.setZoom(editor.zoom / 1.25);
    else if (k === "0") fit();
    else return;
    ev.preventDefault();
  }

  (async () => {
    box.append(notice("info", "Loading…"));
    let ds;
    try {
      [sample, ds] = await Promise.all([get(`v1/samples/${sha256}`, { dataset }), get(`v1/datasets/${encodeURIComponent(dataset)}`)]);
      src = await imageUrl(sha256, dataset);
    } catch (err) {
      clear(box).append(notice(err.unavailable ? "unavailable" : "error", `Frame ${sha256.slice(0, 12)}: ${err.message}`));
      return;
    }
    let side = null;
    editor = new BoxEditor({
      src,
      width: sample.width,
      height: sample.height,
      classes: ds.classes,
      boxes: startingBoxes(sample),
      onChange: () => side && side.refresh(),
    });
    side = sidebar(ds.classes);
    const info = h(
      "p",
      { class: "frame-info", id: "frame-info" },
      `${sample.dataset} · ${sample.line ?? "no line"} · ${sample.camera ?? "no camera"} · ${sample.sampler ?? sample.source}`,
      ` · ${sample.width}×${sample.height} · model ${sample.model_ref ?? "–"} · ${sample.state}`,
    );
    viewport = h("div", { class: "viewport", id: "viewport" }, editor.stage);
    clear(box).append(h("div", { class: "label-main" }, info, viewport), side.panel);
    fit();
    side.refresh();
    box.dataset.ready = "true";
  })();

  document.addEventListener("keydown", onKey);
  return () => {
    document.removeEventListener("keydown", onKey);
    if (src) URL.revokeObjectURL(src);
  };
}
