#!/usr/bin/env bash
# The learning loop end to end on NEU-DET (docs/learning.md, "Worked example").
#
# Given a data store that holds dataset DATASET (part of the NEU-DET training split,
# imported, golden set frozen) and a registry whose LINEAGE has a production student,
# this script:
#   1. writes a settings file with a trigger for LINEAGE (N new labels, M per class) and
#      snapshots DATASET, so that only the labels fed in below count as new;
#   2. starts `lineinspect serve` with the embedded training worker (trainer: auto);
#   3. feeds the rest of the split through the intake (`lineinspect data import` of the
#      whole split: the images already there are duplicates, the others are new labels;
#      or --via rest: POST /v1/datasets/DATASET/samples, one image at a time);
#   4. waits for the trigger's pipeline (snapshot -> distil from the teacher, fine-tuned
#      from production -> evaluate -> export -> gate -> register -> policy) to finish;
#   5. prints the gate's before (production) and after (candidate) on the golden set:
#      mAP@.5, mAP@.5:.95, per-class escape, each rule; the registered version and the
#      promotion policy's result; then stops the server.
#
# Every input is an option; run with --help. Long runs: the pipeline resumes after a
# crash (run the script again: the same data gives the same pipeline job).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$here/.venv/bin}
DATA_ROOT=var
REGISTRY=registry
DATASET=neu-start
LINEAGE=neu-det-student
SOURCE=/work/shared/datasets/neu-det
TEACHER_REF=neu-det-teacher
TRAIN_TEACHER=0
TEACHER_EPOCHS=30
STUDENT_EPOCHS=20
INIT_FROM=""          # default: LINEAGE (its production version, pinned at submission)
MIN_NEW_LABELS=100
MIN_PER_CLASS=10
DEBOUNCE_S=20
VIA=import
PORT=8000
METRICS_PORT=9101
THREADS=0
EXTRA=""              # more pipeline parameters, e.g. "student_batch=8 student_lr=0.001"
SETTINGS_EXTRA=""     # a YAML file of more settings (promotion, gate_rules...), appended
WORK=""
TIMEOUT_S=86400

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF

options (defaults in brackets):
  --data-root DIR        data store root [$DATA_ROOT]
  --registry DIR         model registry [$REGISTRY]
  --dataset NAME         the store's dataset [$DATASET]
  --lineage NAME         registry model name of the student [$LINEAGE]
  --source DIR           YOLO folder whose new images are fed in [$SOURCE]
  --via import|rest      how they come in [$VIA]
  --teacher-ref REF      teacher to distil from [$TEACHER_REF]
  --train-teacher        train a teacher on the snapshot instead (--teacher-epochs [$TEACHER_EPOCHS])
  --student-epochs N     distillation epochs [$STUDENT_EPOCHS]
  --init-from REF|none   the student fine-tunes from REF; none: from scratch [the lineage's production]
  --min-new-labels N     trigger: new labels since the last snapshot [$MIN_NEW_LABELS]
  --min-per-class M      trigger: ...of each class at least [$MIN_PER_CLASS]
  --debounce-s S         trigger: quiet time after the last label [$DEBOUNCE_S]
  --param NAME=VALUE     another pipeline parameter (repeatable), e.g. student_batch=8
  --settings FILE        more settings (YAML) appended to the generated file
  --port P               REST port [$PORT]; --metrics-port P: worker's [$METRICS_PORT]
  --threads N            trainer_threads (0: half the cores) [$THREADS]
  --work DIR             where settings, logs and the report go [mktemp]
  --timeout-s S          give up waiting after S seconds [$TIMEOUT_S]
EOF
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --data-root) DATA_ROOT=$2; shift 2 ;;
    --registry) REGISTRY=$2; shift 2 ;;
    --dataset) DATASET=$2; shift 2 ;;
    --lineage) LINEAGE=$2; shift 2 ;;
    --source) SOURCE=$2; shift 2 ;;
    --via) VIA=$2; shift 2 ;;
    --teacher-ref) TEACHER_REF=$2; shift 2 ;;
    --train-teacher) TRAIN_TEACHER=1; shift ;;
    --teacher-epochs) TEACHER_EPOCHS=$2; shift 2 ;;
    --student-epochs) STUDENT_EPOCHS=$2; shift 2 ;;
    --init-from) INIT_FROM=$2; shift 2 ;;
    --min-new-labels) MIN_NEW_LABELS=$2; shift 2 ;;
    --min-per-class) MIN_PER_CLASS=$2; shift 2 ;;
    --debounce-s) DEBOUNCE_S=$2; shift 2 ;;
    --param) EXTRA="$EXTRA $2"; shift 2 ;;
    --settings) SETTINGS_EXTRA=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --metrics-port) METRICS_PORT=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --timeout-s) TIMEOUT_S=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

WORK=${WORK:-$(mktemp -d /tmp/learning-demo.XXXXXX)}
mkdir -p "$WORK"
DATA_ROOT=$(realpath "$DATA_ROOT"); REGISTRY=$(realpath "$REGISTRY")
SETTINGS=$WORK/settings.yaml
API=http://127.0.0.1:$PORT
export WORK LINEAGE DATASET TEACHER_REF TRAIN_TEACHER TEACHER_EPOCHS STUDENT_EPOCHS INIT_FROM \
  MIN_NEW_LABELS MIN_PER_CLASS DEBOUNCE_S EXTRA DATA_ROOT REGISTRY PORT METRICS_PORT THREADS

# 1. settings: the store, the registry, the served lineage, the trigger
"$BIN/python" - <<'PY' > "$SETTINGS"
import os
import yaml

e = os.environ
pipeline = {"student": "distil", "student_epochs": int(e["STUDENT_EPOCHS"])}
if e["INIT_FROM"] != "none":
    pipeline["student_init_from"] = e["INIT_FROM"] or e["LINEAGE"]
if e["TRAIN_TEACHER"] == "1":
    pipeline.update(teacher="train", teacher_epochs=int(e["TEACHER_EPOCHS"]))
else:
    pipeline.update(teacher="ref", teacher_ref=e["TEACHER_REF"])
for item in e["EXTRA"].split():
    name, _, value = item.partition("=")
    pipeline[name] = yaml.safe_load(value)
print(yaml.safe_dump({
    "data_root": e["DATA_ROOT"],
    "registry_root": e["REGISTRY"],
    "models": [e["LINEAGE"]],
    "port": int(e["PORT"]),
    "trainer": "auto",
    "trainer_metrics_port": int(e["METRICS_PORT"]),
    "trainer_threads": int(e["THREADS"]),
    "triggers": {e["LINEAGE"]: {
        "dataset": e["DATASET"],
        "min_new_labels": int(e["MIN_NEW_LABELS"]),
        "min_per_class": int(e["MIN_PER_CLASS"]),
        "debounce_s": float(e["DEBOUNCE_S"]),
        "min_interval_s": 0,
        "pipeline": pipeline,
    }},
}, sort_keys=False), end="")
PY
if [[ -n $SETTINGS_EXTRA ]]; then cat "$SETTINGS_EXTRA" >> "$SETTINGS"; fi
echo "== settings ($SETTINGS)"; cat "$SETTINGS"

echo "== before"
# What the store holds now is what production was trained on: a snapshot marks it, so
# only the labels fed below count towards the trigger ("new since the last snapshot").
"$BIN/lineinspect" data snapshot "$DATASET" --data-root "$DATA_ROOT"
"$BIN/lineinspect" models list --registry "$REGISTRY" | grep -F "$LINEAGE" || true
"$BIN/lineinspect" data list --data-root "$DATA_ROOT"

# 2. serve with the embedded training worker
"$BIN/lineinspect" serve --config "$SETTINGS" > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -sf "$API/readyz" > /dev/null && break
  kill -0 $SERVE 2>/dev/null || { tail -30 "$WORK/serve.log"; exit 1; }
  sleep 1
done
curl -sf "$API/readyz" > /dev/null || { echo "serve did not get ready" >&2; exit 1; }
echo "== serving on $API (log $WORK/serve.log)"

# 3. the new labels
echo "== feeding $SOURCE into $DATASET via $VIA"
if [[ $VIA == rest ]]; then
  "$BIN/python" - "$SOURCE" "$API" "$DATASET" <<'PY'
import json, sys
from pathlib import Path
import httpx
import yaml
from models.data.formats.yolo import label_path_for

src, api, ds = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
cfg = yaml.safe_load((src / "data.yaml").read_text())
names, counts = cfg["names"], {}
for img in sorted((src / cfg["train"]).iterdir()):
    boxes = []
    from PIL import Image
    w, h = Image.open(img).size
    for row in label_path_for(img).read_text().split("\n"):
        if row.strip():
            c, x, y, bw, bh = row.split()
            x, y, bw, bh = float(x) * w, float(y) * h, float(bw) * w, float(bh) * h
            boxes.append({"box": [x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2], "label": names[int(c)]})
    labels = json.dumps(boxes if boxes else {"ok": True})
    r = httpx.post(f"{api}/v1/datasets/{ds}/samples", files={"image": (img.name, img.read_bytes())},
                   data={"labels": labels, "author": "demo"}, timeout=60)
    out = r.json().get("outcome", f"HTTP {r.status_code}") if r.status_code < 500 else f"HTTP {r.status_code}"
    counts[out] = counts.get(out, 0) + 1
print("intake:", counts)
PY
else
  "$BIN/lineinspect" data import "$SOURCE" --dataset "$DATASET" --format yolo \
    --data-root "$DATA_ROOT" --author demo
fi

# 4. the trigger's pipeline
echo "== waiting for the trigger (min_new_labels $MIN_NEW_LABELS, debounce ${DEBOUNCE_S}s)"
deadline=$(( $(date +%s) + TIMEOUT_S ))
"$BIN/python" - "$API" "$LINEAGE" "$deadline" "$WORK/pipeline.json" <<'PY'
import json, sys, time
import httpx

api, lineage, deadline, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
job, last = None, ""
while time.time() < deadline:
    page = httpx.get(f"{api}/v1/jobs", params={"kind": "pipeline", "limit": 20}, timeout=30).json()
    mine = [j for j in page["jobs"] if j["params"].get("lineage") == lineage]
    if mine:
        job = mine[0]
        p = job["progress"] or {}
        sp = p.get("step_progress") or {}
        line = (f"job {job['id']} {job['state']}: step {p.get('step', '-')}/{p.get('steps', '-')} "
                f"{p.get('step_name', '')} epoch {sp.get('epoch', '-')}/{sp.get('epochs', '-')} "
                f"eta {sp.get('eta_s', '-')}s")
        if line != last:
            print(time.strftime("%H:%M:%S"), line, flush=True)
            last = line
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
    time.sleep(5)
json.dump(job, open(out, "w"), indent=2)
if not job or job["state"] != "succeeded":
    sys.exit(f"pipeline did not succeed: {job and job['state']}: {job and job['error']}")
PY

# 5. before / after
echo "== gate on the golden set: production (before) vs candidate (after)"
"$BIN/python" - "$WORK/pipeline.json" <<'PY'
import json, sys

job = json.load(open(sys.argv[1]))
res = job["result"]
rep = res["gate_report"]
c, p = rep["candidate"], rep["production"] or {}

def pct(r):
    return "n/a" if not r or r.get("rate") is None else f"{100 * r['rate']:.1f} % ({r['count']}/{r['total']})"

print(f"golden set: {rep.get('golden_images', c['num_images'])} images; snapshot {res['snapshot'][:16]}")
after = f"{res['registered']['name']}:{res['registered']['version']}"
print(f"{'':22} {'before: ' + (p.get('model') or '-'):>26} {'after: ' + after:>26}")
print(f"{'mAP@.5':22} {p.get('map50', float('nan')):>26.4f} {c['map50']:>26.4f}")
print(f"{'mAP@.5:.95':22} {p.get('map50_95', float('nan')):>26.4f} {c['map50_95']:>26.4f}")
for name, r in c["escape"].items():
    print(f"{'escape ' + name:22} {pct((p.get('escape') or {}).get(name)):>26} {pct(r):>26}")
for k, v in c["latency_ms"].items():
    print(f"{'latency ' + k + ' ms':22} {(p.get('latency_ms') or {}).get(k, float('nan')):>26.2f} {v:>26.2f}")
for r in rep["results"]:
    print(("PASS " if r["passed"] else "FAIL ") + f"{r['rule']}: {r['detail']}")
print(f"gate {'PASSED' if res['gate']['passed'] else 'FAILED'} against {res['gate']['production']}")
print(f"registered {res['registered']['name']}:{res['registered']['version']}")
print("promotion policy:", json.dumps(res["policy"]))
if res.get("evaluation"):
    ev = res["evaluation"]
    print(f"val split of the snapshot (lineinspect val): mAP@.5 {ev.get('map50')}, mAP@.5:.95 {ev.get('map50_95')}")
print(f"pipeline job {job['id']}: steps {json.dumps(res['jobs'])}")
PY
echo "== after"
"$BIN/lineinspect" models list --registry "$REGISTRY" | grep -F "$LINEAGE" || true
echo "== report: $WORK/pipeline.json; logs: $WORK/serve.log"
