// What the queue and label views share: the frames of the queue as last listed (so the
// label view's arrow keys and Enter walk through them) and the queue's filters.

import { get } from "./api.js";

export const QUEUE_PAGE = 50;

export const queueState = {
  filters: { order: "uncertain" },
  offset: 0,
  items: [], // [{sha256, dataset}] in queue order
};

// The waiting frames under the filters: state "unlabelled" is what waits for a label.
export async function fetchQueue(filters, offset = 0) {
  const page = await get("v1/samples", {
    state: "unlabelled",
    ...filters,
    offset,
    limit: QUEUE_PAGE,
  });
  queueState.filters = { ...filters };
  queueState.offset = offset;
  queueState.items = page.items.map((s) => ({ sha256: s.sha256, dataset: s.dataset }));
  return page;
}

// The frame after (step 1) or before (step -1) the given one in the listed queue.
export function neighbour(sha256, dataset, step) {
  const items = queueState.items;
  const i = items.findIndex((s) => s.sha256 === sha256 && s.dataset === dataset);
  if (i < 0) return items[0] || null;
  return items[i + step] || null;
}

export function labelHash(item) {
  return `#/label/${encodeURIComponent(item.dataset)}/${item.sha256}`;
}
