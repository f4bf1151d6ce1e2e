// Review queue: captured, flagged and disagreement frames waiting for a label
// (GET v1/samples?state=unlabelled), most uncertain or newest first, filtered by
// dataset, line, camera, sampler and predicted class, with the count waiting.

import { get } from "./api.js";
import { clear, fmtNumber, fmtTime, h, notice, table } from "./dom.js";
import { QUEUE_PAGE, fetchQueue, labelHash, queueState } from "./state.js";

export const title = "Review queue";
export const scope = "label";

const FILTERS = [
  ["line", "Line"],
  ["camera", "Camera"],
  ["sampler", "Sampler"],
  ["predicted_class", "Predicted class"],
];

function lowestScore(prediction) {
  const scores = (prediction || []).map((d) => d.score).filter((s) => s !== undefined);
  return scores.length ? Math.min(...scores) : null;
}

function filterForm(datasets, onApply) {
  const current = (key, fallback = "") => queueState.filters[key] ?? fallback;
  const fields = FILTERS.map(([key, text]) =>
    h(
      "label",
      {},
      text,
      h("input", { name: key, id: `filter-${key}`, value: current(key), size: 10, list: `values-${key}` }),
      h("datalist", { id: `values-${key}` }),
    ),
  );
  const dataset = h(
    "select",
    { name: "dataset", id: "filter-dataset" },
    h("option", { value: "" }, "all"),
    datasets.map((d) => h("option", { value: d.name, selected: d.name === current("dataset") }, d.name)),
  );
  const order = h(
    "select",
    { name: "order", id: "filter-order" },
    h("option", { value: "uncertain", selected: current("order", "uncertain") === "uncertain" }, "most uncertain first"),
    h("option", { value: "newest", selected: current("order") === "newest" }, "newest first"),
  );
  return h(
    "form",
    {
      class: "filters",
      id: "queue-filters",
      onsubmit: (ev) => {
        ev.preventDefault();
        const data = Object.fromEntries(new FormData(ev.target).entries());
        onApply(Object.fromEntries(Object.entries(data).filter(([, v]) => v !== "")));
      },
    },
    h("label", {}, "Dataset", dataset),
    fields,
    h("label", {}, "Order", order),
    h("button", { type: "submit", id: "queue-apply" }, "Apply"),
  );
}

function rows(items) {
  return items.map((s) =>
    h(
      "tr",
      {
        class: "queue-row",
        tabindex: 0,
        dataset: { sha256: s.sha256, dataset: s.dataset },
        onclick: () => {
          location.hash = labelHash(s);
        },
        onkeydown: (ev) => {
          if (ev.key === "Enter") location.hash = labelHash(s);
        },
      },
      h("td", {}, fmtTime(s.taken_at)),
      h("td", {}, s.dataset),
      h("td", {}, s.line ?? "–"),
      h("td", {}, s.camera ?? "–"),
      h("td", {}, s.sampler ?? s.source),
      h("td", {}, s.predicted_class ?? "–"),
      h("td", { class: "num" }, (s.prediction || []).length),
      h("td", { class: "num" }, fmtNumber(lowestScore(s.prediction), 2)),
    ),
  );
}

export function mount(root) {
  const box = h("section", { class: "view-queue" }, h("h1", {}, title));
  root.append(box);
  const list = h("div", { id: "queue-list" });

  async function show(filters, offset) {
    clear(list).append(notice("info", "Loading…"));
    let page;
    try {
      page = await fetchQueue(filters, offset);
    } catch (err) {
      clear(list).append(notice(err.unavailable ? "unavailable" : "error", err.message));
      return;
    }
    const count = h("p", { id: "queue-count", class: "count" }, `${page.total} waiting for a label`);
    const pager = h(
      "p",
      { class: "pager" },
      h("button", { type: "button", disabled: offset === 0, onclick: () => show(filters, Math.max(0, offset - QUEUE_PAGE)) }, "Previous page"),
      ` ${page.total ? offset + 1 : 0}–${offset + page.items.length} of ${page.total} `,
      h("button", { type: "button", disabled: offset + page.items.length >= page.total, onclick: () => show(filters, offset + QUEUE_PAGE) }, "Next page"),
    );
    const body = page.items.length
      ? table(
          ["Taken", "Dataset", "Line", "Camera", "Sampler", "Predicted", "Boxes", "Lowest score"],
          rows(page.items),
          { id: "queue-table", class: "data" },
        )
      : notice("info", "Nothing is waiting for a label under these filters.");
    clear(list).append(count, body, pager);
    suggest(page.items);
  }

  // Offer the values seen on this page in each filter's suggestions.
  function suggest(items) {
    for (const [key] of FILTERS) {
      const dl = document.getElementById(`values-${key}`);
      if (!dl) continue;
      const seen = [...new Set(items.map((s) => s[key]).filter(Boolean))].sort();
      clear(dl).append(...seen.map((v) => h("option", { value: v })));
    }
  }

  (async () => {
    let datasets = [];
    try {
      datasets = await get("v1/datasets");
    } catch {
      datasets = [];
    }
    const initial = { ...queueState.filters };
    box.append(filterForm(datasets, (f) => show(f, 0)), list);
    show(initial, queueState.offset);
  })();
}
