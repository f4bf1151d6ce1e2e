// Lines: per-line throughput, fail rate and top defect classes over a window, from the
// service's audit rows (GET v1/lines), with a link to Grafana when grafana_url is set.

import { get } from "./api.js";
import { clear, fmtNumber, fmtPercent, h, notice, table } from "./dom.js";

export const title = "Lines";
export const scope = "read";

const WINDOWS = [
  [900, "15 min"],
  [3600, "1 hour"],
  [86400, "24 hours"],
];

export function mount(root) {
  const box = h("section", { class: "view-lines" }, h("h1", {}, title));
  const links = h("p", { class: "links", id: "grafana" });
  const body = h("div", { id: "lines-body" });
  let windowS = 3600;
  const select = h(
    "select",
    {
      id: "lines-window",
      onchange: (ev) => {
        windowS = Number(ev.target.value);
        load();
      },
    },
    WINDOWS.map(([s, text]) => h("option", { value: s, selected: s === windowS }, text)),
  );
  box.append(links, h("p", {}, h("label", {}, "Window ", select)), body);
  root.append(box);

  async function load() {
    clear(body).append(notice("info", "Loading…"));
    try {
      const data = await get("v1/lines", { window_s: windowS });
      if (!data.lines.length) {
        clear(body).append(notice("info", "No frames were answered in this window."));
        return;
      }
      const rows = data.lines.map((l) =>
        h(
          "tr",
          { class: "line-row" },
          h("td", {}, l.line ?? "(no line)"),
          h("td", { class: "num" }, l.frames),
          h("td", { class: "num" }, fmtNumber(l.per_minute, 1)),
          h("td", { class: "num" }, fmtPercent(l.fail_rate)),
          h("td", {}, (l.top_classes || []).map((c) => `${c.label} ${c.count}`).join(", ") || "–"),
        ),
      );
      clear(body).append(
        table(["Line", "Frames", "Per minute", "Fail rate", "Top defect classes"], rows, { class: "data", id: "lines-table" }),
      );
    } catch (err) {
      const text = err.unavailable ? "Line figures are not available: this service has no audit trail (GET v1/lines)." : err.message;
      clear(body).append(notice(err.unavailable ? "unavailable" : "error", text));
    }
  }

  (async () => {
    try {
      const cfg = await get("v1/ui/settings");
      if (cfg.grafana_url) {
        links.append(h("a", { href: cfg.grafana_url, target: "_blank", rel: "noopener", id: "grafana-link" }, "Open the Grafana dashboard"));
      }
    } catch {
      // no link
    }
  })();
  load();
  const timer = setInterval(load, 30000);
  return () => clearInterval(timer);
}
