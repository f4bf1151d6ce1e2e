// Models: every lineage with its versions and aliases, each gated candidate's report
// (both models' figures side by side, from its card's "gate"), the shadow comparison
// (GET v1/models/{name}/shadow), the promotion history (GET v1/models/{name}/history),
// and, with the admin scope, promote (PUT v1/models/{name}/aliases/production) and
// rollback (POST v1/models/{name}/rollback).

import { get, post, put } from "./api.js";
import { can } from "./auth.js";
import { clear, fmtNumber, fmtPercent, fmtTime, h, notice, table } from "./dom.js";

export const title = "Models";
export const scope = "read";

const NEEDS_ADMIN = "needs a token with the 'admin' scope";

// A button that asks once more before it acts; disabled without the admin scope. `act`
// returns what happened, given to `done` (the lineage reloads and shows it); a refusal
// stays beside the button.
function adminAction(id, text, question, act, done) {
  const wrap = h("span", { class: "admin-action" });
  const allowed = can("admin");
  const button = h("button", { type: "button", id, disabled: !allowed, title: allowed ? null : NEEDS_ADMIN }, text);
  const message = h("span", { class: "action-message", role: "status" });
  button.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "confirm", id: `${id}-confirm` }, "Confirm");
    const no = h("button", { type: "button", class: "cancel" }, "Cancel");
    clear(message).append(` ${question} `, yes, " ", no);
    no.addEventListener("click", () => clear(message));
    yes.addEventListener("click", async () => {
      clear(message).append(" working…");
      let outcome;
      try {
        outcome = await act();
      } catch (err) {
        message.dataset.error = err.code;
        clear(message).append(h("span", { class: "refused" }, ` Refused: ${err.message}`));
        return;
      }
      done(outcome);
    });
  });
  if (!allowed) message.append(h("span", { class: "hint" }, ` (${NEEDS_ADMIN})`));
  wrap.append(button, message);
  return wrap;
}

function rate(fig) {
  if (!fig || fig.rate === null || fig.rate === undefined) return "–";
  return `${fmtPercent(fig.rate)} (${fig.count}/${fig.total})`;
}

// The gate report of a candidate's card: the rules, then both models' figures.
function gateReport(version, gate) {
  const verdict = gate.passed ? "passed" : "failed";
  const rules = table(
    ["Rule", "Candidate", "Production", "Limit", "Result", "Detail"],
    (gate.results || []).map((r) =>
      h(
        "tr",
        { class: r.passed ? "pass" : "fail" },
        h("td", {}, r.rule),
        h("td", { class: "num" }, fmtNumber(r.candidate)),
        h("td", { class: "num" }, fmtNumber(r.production)),
        h("td", { class: "num" }, fmtNumber(r.limit)),
        h("td", {}, r.passed ? "PASS" : "FAIL"),
        h("td", {}, r.detail),
      ),
    ),
    { class: "data gate-rules" },
  );
  const c = gate.candidate || {};
  const p = gate.production || {};
  const classes = [...new Set([...Object.keys(c.escape || {}), ...Object.keys(p.escape || {})])];
  const figures = [
    ["model", c.model, p.model],
    ["mAP@.5", fmtNumber(c.map50), fmtNumber(p.map50)],
    ["mAP@.5:.95", fmtNumber(c.map50_95), fmtNumber(p.map50_95)],
    ["false reject", rate(c.false_reject), rate(p.false_reject)],
    ...classes.map((k) => [`escape ${k}`, rate((c.escape || {})[k]), rate((p.escape || {})[k])]),
    ["latency b1 (ms)", fmtNumber((c.latency_ms || {}).b1, 2), fmtNumber((p.latency_ms || {}).b1, 2)],
    ["latency b8 (ms)", fmtNumber((c.latency_ms || {}).b8, 2), fmtNumber((p.latency_ms || {}).b8, 2)],
  ];
  const side = table(
    ["Figure", "Candidate", "Production"],
    figures.map(([k, a, b]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, a ?? "–"), h("td", { class: "num" }, b ?? "–"))),
    { class: "data gate-figures" },
  );
  return h(
    "details",
    { class: `gate gate-${verdict}`, id: `gate-v${version}`, open: true },
    h("summary", {}, `Gate report of v${version}: ${verdict} (${fmtTime(gate.created)}, ${gate.golden_images} golden images)`),
    h("div", { class: "side-by-side" }, side, rules),
  );
}

function versionRows(detail, reload) {
  const byVersion = {};
  for (const [alias, v] of Object.entries(detail.aliases)) (byVersion[v] ||= []).push(alias);
  return [...detail.versions].reverse().map((v) => {
    const card = detail.cards[v] || {};
    const aliases = byVersion[v] || [];
    const gate = card.gate ? (card.gate.passed ? "passed" : "failed") : "–";
    const action = aliases.includes("production")
      ? h("span", { class: "hint" }, "in production")
      : adminAction(`promote-${detail.name}-${v}`, "Promote to production", `Point production at v${v}?`, async () => {
          const out = await put(`v1/models/${encodeURIComponent(detail.name)}/aliases/production`, { version: v });
          return `Promoted: production is v${out.version} (was v${out.previous ?? "–"}).`;
        }, reload);
    return h(
      "tr",
      { class: "version-row", dataset: { version: v } },
      h("td", { class: "num" }, `v${v}`),
      h("td", {}, aliases.map((a) => h("span", { class: `alias alias-${a}` }, a))),
      h("td", {}, card.role ?? "–"),
      h("td", {}, card.architecture ?? "–"),
      h("td", {}, fmtTime(card.created)),
      h("td", { class: "num" }, fmtNumber((card.metrics || {}).map50)),
      h("td", {}, gate),
      h("td", {}, action),
    );
  });
}

async function optional(path, query) {
  try {
    return { data: await get(path, query) };
  } catch (err) {
    return { error: err };
  }
}

function shadowSection(result) {
  const s = result.data;
  if (!s) {
    const text = result.error && result.error.status === 404 ? "No shadow comparison (none running, or not available on this service)." : result.error.message;
    return h("div", { class: "shadow" }, h("h3", {}, "Shadow comparison"), notice("unavailable", text));
  }
  const deltas = Object.entries(s.class_rate_delta || {}).map(([k, v]) => `${k} ${v >= 0 ? "+" : ""}${fmtPercent(v)}`);
  const rows = [
    ["versions", `production v${s.production_version} vs shadow v${s.shadow_version}`],
    ["frames compared", s.compared],
    ["verdict agreement", s.compared ? fmtPercent(s.agreement) : "–"],
    ["pass → fail", s.pass_to_fail],
    ["fail → pass", s.fail_to_pass],
    ["precision / recall", `${fmtNumber(s.precision)} / ${fmtNumber(s.recall)}`],
    ["class rate change", deltas.join(", ") || "–"],
  ].map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, String(v))));
  return h("div", { class: "shadow" }, h("h3", {}, "Shadow comparison"), h("table", { class: "data" }, h("tbody", {}, rows)));
}

function historySection(result) {
  if (!result.data) {
    const text = result.error.unavailable ? "Promotion history is not available on this service." : result.error.message;
    return h("div", { class: "history" }, h("h3", {}, "Promotion history"), notice("unavailable", text));
  }
  const items = result.data.items || [];
  const body = items.length
    ? table(
        ["When", "Alias", "From", "To", "Actor", "Reason"],
        items.map((i) =>
          h("tr", {}, h("td", {}, fmtTime(i.created_at)), h("td", {}, i.alias), h("td", { class: "num" }, i.from_version ?? "–"), h("td", { class: "num" }, i.to_version ?? "–"), h("td", {}, i.actor), h("td", {}, i.reason)),
        ),
        { class: "data" },
      )
    : notice("info", "No alias has moved yet.");
  return h("div", { class: "history" }, h("h3", {}, "Promotion history"), body);
}

// One lineage's article; `flash` is the outcome of the action that reloaded it.
async function lineage(name, container, flash = null) {
  const reload = (text) => lineage(name, container, text);
  let detail;
  try {
    detail = await get(`v1/models/${encodeURIComponent(name)}`);
  } catch (err) {
    clear(container).append(h("h2", {}, name), notice("error", err.message));
    return;
  }
  const [shadow, history] = await Promise.all([
    optional(`v1/models/${encodeURIComponent(name)}/shadow`),
    optional(`v1/models/${encodeURIComponent(name)}/history`, { limit: 20 }),
  ]);
  // Rollback comes with the promotion history: without it, there is nothing to go back to.
  const rollback = history.data
    ? adminAction(`rollback-${name}`, "Roll back production", "Move production back to the previous version?", async () => {
        const out = await post(`v1/models/${encodeURIComponent(name)}/rollback`, { reason: "operator page" });
        return `Rolled back: production is v${out.version} (was v${out.previous ?? "–"}).`;
      }, reload)
    : h("span", { class: "hint" }, "(rollback not available on this service)");
  const gated = detail.versions.filter((v) => (detail.cards[v] || {}).gate).reverse();
  const serving = Object.entries(detail.serving || {}).map(([a, v]) => `${a} v${v}`).join(", ") || "–";
  clear(container).append(
    h("h2", {}, name),
    flash ? h("p", { class: "flash", id: `flash-${name}`, role: "status" }, flash) : "",
    h("p", { class: "model-head" }, `serving here: ${serving} `, rollback),
    table(["Version", "Aliases", "Role", "Architecture", "Created", "mAP@.5 (card)", "Gate", ""], versionRows(detail, reload), {
      class: "data versions",
    }),
    ...(gated.length ? gated.map((v) => gateReport(v, detail.cards[v].gate)) : [notice("info", "No version carries a gate report.")]),
    h("div", { class: "model-extra" }, shadowSection(shadow), historySection(history)),
  );
}

export function mount(root) {
  const box = h("section", { class: "view-models" }, h("h1", {}, title));
  root.append(box);
  (async () => {
    let list;
    try {
      list = await get("v1/models");
    } catch (err) {
      box.append(notice(err.unavailable ? "unavailable" : "error", err.message));
      return;
    }
    if (!list.length) box.append(notice("info", "The registry holds no model."));
    for (const m of list) {
      const container = h("article", { class: "lineage", id: `model-${m.name}` }, h("h2", {}, m.name));
      box.append(container);
      lineage(m.name, container);
    }
  })();
}
