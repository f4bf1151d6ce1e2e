// Jobs: running jobs with their progress (epoch of total, latest mAP, ETA), queued jobs,
// the last results, cancel, and a form to start a pipeline (POST v1/jobs, kind
// "pipeline"). Every /v1/jobs route needs the admin scope. Refreshes every 5 s.

import { del, get, post } from "./api.js";
import { clear, fmtDuration, fmtNumber, fmtTime, h, notice, table } from "./dom.js";

export const title = "Jobs";
export const scope = "admin";

const FINISHED = ["succeeded", "failed", "cancelled"];

// A job's training progress: its own, or for a pipeline that of its current step
// (`step` of `steps`, `step_name`, `step_progress`).
function trainingProgress(job) {
  const p = job.progress || {};
  return p.steps ? p.step_progress || {} : p;
}

function progressCell(job) {
  const p = job.progress || {};
  const t = trainingProgress(job);
  const step = p.steps ? `step ${p.step} of ${p.steps} (${p.step_name}) ` : "";
  if (!t.epochs) return h("td", {}, step || "starting");
  const share = Math.min(1, (t.epoch || 0) / t.epochs);
  return h(
    "td",
    {},
    step,
    h("progress", { max: 1, value: share.toFixed(3), "aria-label": `job ${job.id} progress` }),
    ` epoch ${t.epoch ?? 0} of ${t.epochs}`,
  );
}

function cancelButton(job, reload) {
  return h(
    "button",
    {
      type: "button",
      class: "cancel-job",
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await del(`v1/jobs/${job.id}`);
        } catch (err) {
          ev.target.replaceWith(h("span", { class: "refused" }, err.message));
        }
        reload();
      },
    },
    "Cancel",
  );
}

function runningTable(jobs, reload) {
  return table(
    ["Job", "Kind", "Progress", "Latest mAP@.5", "ETA", "Worker", "Started", ""],
    jobs.map((j) =>
      h(
        "tr",
        { class: "job-row", dataset: { job: j.id } },
        h("td", { class: "num" }, `#${j.id}`),
        h("td", {}, j.kind),
        progressCell(j),
        h("td", { class: "num" }, fmtNumber((trainingProgress(j).metrics || {}).map50)),
        h("td", {}, fmtDuration(trainingProgress(j).eta_s)),
        h("td", {}, j.worker ?? "–"),
        h("td", {}, fmtTime(j.started_at)),
        h("td", {}, cancelButton(j, reload)),
      ),
    ),
    { class: "data", id: "jobs-running" },
  );
}

function queuedTable(jobs, reload) {
  return table(
    ["Job", "Kind", "Parameters", "Queued", ""],
    jobs.map((j) =>
      h(
        "tr",
        { class: "job-row" },
        h("td", { class: "num" }, `#${j.id}`),
        h("td", {}, j.kind),
        h("td", { class: "params" }, JSON.stringify(j.params)),
        h("td", {}, fmtTime(j.created_at)),
        h("td", {}, cancelButton(j, reload)),
      ),
    ),
    { class: "data", id: "jobs-queued" },
  );
}

function resultOf(job) {
  if (job.state === "failed") return job.error ?? "failed";
  const r = job.result || {};
  if (r.best && r.best.map50 !== undefined) return `best mAP@.5 ${fmtNumber(r.best.map50)} (epoch ${r.best.epoch})`;
  if (r.gate) {
    const reg = r.registered ? `, registered ${r.registered.name} v${r.registered.version}` : "";
    return `gate ${r.gate.passed ? "passed" : "failed"}${reg}`;
  }
  return job.state;
}

function finishedTable(jobs) {
  return table(
    ["Job", "Kind", "State", "Result", "Finished"],
    jobs.map((j) =>
      h(
        "tr",
        { class: `job-row job-${j.state}` },
        h("td", { class: "num" }, `#${j.id}`),
        h("td", {}, j.kind),
        h("td", {}, j.state),
        h("td", {}, resultOf(j)),
        h("td", {}, fmtTime(j.finished_at)),
      ),
    ),
    { class: "data", id: "jobs-finished" },
  );
}

async function pipelineForm(onStarted) {
  const [models, datasets] = await Promise.all([get("v1/models").catch(() => []), get("v1/datasets").catch(() => [])]);
  const lineage = h("select", { name: "lineage", id: "pipeline-lineage" }, models.map((m) => h("option", { value: m.name }, m.name)));
  const dataset = h("select", { name: "dataset", id: "pipeline-dataset" }, datasets.map((d) => h("option", { value: d.name }, d.name)));
  const extra = h("textarea", { name: "params", id: "pipeline-params", rows: 2, cols: 40, placeholder: '{"epochs": 30}' });
  const message = h("p", { class: "status", id: "pipeline-status", role: "status" });
  return h(
    "form",
    {
      class: "pipeline-form",
      id: "pipeline-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        let params = {};
        try {
          params = extra.value.trim() ? JSON.parse(extra.value) : {};
        } catch (err) {
          message.textContent = `The extra parameters are not JSON: ${err.message}`;
          return;
        }
        try {
          const job = await post("v1/jobs", { kind: "pipeline", params: { lineage: lineage.value, dataset: dataset.value, ...params } });
          message.textContent = `Pipeline job #${job.id} is ${job.state}.`;
          onStarted();
        } catch (err) {
          message.textContent = `Not started: ${err.message}`;
        }
      },
    },
    h("h2", {}, "Start a pipeline"),
    h("label", {}, "Lineage ", lineage),
    h("label", {}, "Dataset ", dataset),
    h("label", {}, "Extra parameters (JSON) ", extra),
    h("button", { type: "submit", id: "pipeline-start" }, "Start pipeline"),
    message,
  );
}

export function mount(root) {
  const box = h("section", { class: "view-jobs" }, h("h1", {}, title));
  const lists = h("div", { id: "jobs-lists" });
  root.append(box);
  box.append(lists);

  async function load() {
    try {
      const [running, queued, finished] = await Promise.all([
        get("v1/jobs", { state: "running", limit: 50 }),
        get("v1/jobs", { state: "queued", limit: 50 }),
        get("v1/jobs", { state: FINISHED, limit: 10 }),
      ]);
      clear(lists).append(
        h("h2", {}, `Running (${running.total})`),
        running.jobs.length ? runningTable(running.jobs, load) : notice("info", "No job is running."),
        h("h2", {}, `Queued (${queued.total})`),
        queued.jobs.length ? queuedTable(queued.jobs, load) : notice("info", "No job is queued."),
        h("h2", {}, "Last results"),
        finished.jobs.length ? finishedTable(finished.jobs) : notice("info", "No job has finished yet."),
      );
    } catch (err) {
      clear(lists).append(notice(err.unavailable ? "unavailable" : "error", err.unavailable ? "Jobs are not available on this service." : err.message));
    }
  }

  load();
  pipelineForm(load).then((form) => box.append(form));
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
