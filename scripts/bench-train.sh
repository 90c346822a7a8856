#!/usr/bin/env bash
# bench-train.sh: float training and QAT fine-tuning speed and accuracy of
# qat next to PyTorch 1.13 eager-mode QAT (../shared/peers/torch_qat.py), on
# the same data, models and schedule, in one run, one thread each
# (GOMAXPROCS=1 for qat, OMP_NUM_THREADS=1 for PyTorch).
#
# usage: scripts/bench-train.sh [DATA] [FLOAT_EPOCHS] [QAT_EPOCHS] [MODELS]
#   DATA: mnist (default) or fashion-mnist, fetched by scripts/fetch-data.sh
#   MODELS: "mlp lenet" by default
# env: PEERS (default ../shared/peers), OUT (default runs/bench-train),
#      PYTHON (default /usr/bin/python3, with Debian's python3-torch),
#      LIMIT (training images, default all), THREADS (default 1: qat's
#      --threads, GOMAXPROCS and PyTorch's OMP_NUM_THREADS)
# Prints one JSON line per run and a markdown table with the qat/PyTorch
# ratios; writes both under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-mnist}
FE=${2:-3}
QE=${3:-1}
MODELS=${4:-mlp lenet}
PEERS=${PEERS:-../shared/peers}
OUT=${OUT:-runs/bench-train}
PYTHON=${PYTHON:-/usr/bin/python3}
QAT_DATA=${QAT_DATA:-$HOME/.cache/qat}
LIMIT=${LIMIT:-0}
THREADS=${THREADS:-1}
lim=()
[ "$LIMIT" -gt 0 ] && lim=(--limit "$LIMIT")
mkdir -p "$OUT"
go build -o "$OUT/qat" ./cmd/qat
[ -d "$QAT_DATA/$DATA" ] || { echo "bench-train: $QAT_DATA/$DATA missing: run scripts/fetch-data.sh" >&2; exit 1; }
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "bench-train: $PYTHON has no torch: apt-get install python3-torch" >&2; exit 1; }
results="$OUT/results.jsonl"
: > "$results"
for m in $MODELS; do
  d="$OUT/$DATA-$m"
  GOMAXPROCS=$THREADS "$OUT/qat" train --model "$m" --data "$DATA" "${lim[@]}" --threads "$THREADS" --epochs "$FE" --out "$d/float.safetensors" --json --quiet > "$d.float.json"
  GOMAXPROCS=$THREADS "$OUT/qat" finetune --from "$d/float.safetensors" "${lim[@]}" --threads "$THREADS" --epochs "$QE" --out "$d/qat.safetensors" --json --quiet > "$d.qat.json"
  OMP_NUM_THREADS=$THREADS "$PYTHON" "$PEERS/torch_qat.py" "$QAT_DATA/$DATA" "$m" "$FE" "$QE" $([ "$LIMIT" -gt 0 ] && echo "$LIMIT") > "$d.torch.json"
  "$PYTHON" - "$DATA" "$m" "$d" >> "$results" <<'PY'
import json, sys
data, model, d = sys.argv[1:]
f = json.load(open(d + ".float.json")); q = json.load(open(d + ".qat.json")); t = json.load(open(d + ".torch.json"))
print(json.dumps(dict(data=data, model=model,
    qat_acc_float=f["accuracy"], qat_acc_fakequant=q["accuracy"],
    torch_acc_float=t["acc_float"], torch_acc_fakequant=t["acc_fakequant"],
    qat_float_sps=round(f["samples_per_sec"]), torch_float_sps=t["float_train_sps"],
    qat_qat_sps=round(q["samples_per_sec"]), torch_qat_sps=t["qat_train_sps"],
    torch_threads=t["threads"], torch=t["peer"])))
PY
  tail -n 1 "$results"
done
"$PYTHON" - "$results" "$FE" "$QE" "$THREADS" "$([ "$LIMIT" -gt 0 ] && echo "$LIMIT" || echo all)" > "$OUT/results.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"Float {sys.argv[2]} epochs (Adam 1e-3) then QAT {sys.argv[3]} epoch(s) (Adam 1e-4), batch 128, {sys.argv[4]} thread(s) each, training images: {sys.argv[5]}.\n")
print("| data | model | acc float qat / torch | acc fake-quant qat / torch | float train samples/s qat / torch (ratio) | QAT train samples/s qat / torch (ratio) |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['data']} | {r['model']} | {100*r['qat_acc_float']:.2f} / {100*r['torch_acc_float']:.2f} "
          f"| {100*r['qat_acc_fakequant']:.2f} / {100*r['torch_acc_fakequant']:.2f} "
          f"| {r['qat_float_sps']} / {r['torch_float_sps']} ({r['qat_float_sps']/r['torch_float_sps']:.2f}x) "
          f"| {r['qat_qat_sps']} / {r['torch_qat_sps']} ({r['qat_qat_sps']/r['torch_qat_sps']:.2f}x) |")
PY
cat "$OUT/results.md"
