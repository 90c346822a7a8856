#!/usr/bin/env bash
# bench-int8.sh: the int8 runtime next to its peers, in one run, one thread
# each:
#   - GEMM u8 x s8 -> s32 (qat bench gemm) against onnxruntime 1.30's
#     MatMulInteger (../shared/peers/ort), float32 against ORT's MatMul;
#   - lenet inference: qat's int8 model (qat eval --model MODEL) against
#     PyTorch 1.13's converted int8 model (../shared/peers/torch_qat.py)
#     and against qat's own float evaluation of the float checkpoint;
#   - model size: the int8 and int4 model files against the float checkpoint.
#
# usage: scripts/bench-int8.sh [DATA]
#   DATA: mnist (default) or fashion-mnist, fetched by scripts/fetch-data.sh
# env: PEERS (default ../shared/peers), OUT (default runs/bench-int8),
#      PYTHON (default /usr/bin/python3, with Debian's python3-torch and
#      python3-onnx), ORT_DIR (default ~/.cache/qat/ort: where
#      onnxruntime-node@1.30.0 is installed with npm --ignore-scripts),
#      SHAPES (GEMM shapes), EPOCHS (float training epochs, default 1).
# Writes JSON lines and results.md under $OUT and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-mnist}
PEERS=${PEERS:-../shared/peers}
OUT=${OUT:-runs/bench-int8}
PYTHON=${PYTHON:-/usr/bin/python3}
ORT_DIR=${ORT_DIR:-$HOME/.cache/qat/ort}
SHAPES=${SHAPES:-128x784x256,1024x1024x1024,256x256x256,64x512x128}
EPOCHS=${EPOCHS:-1}
QAT_DATA=${QAT_DATA:-$HOME/.cache/qat}
mkdir -p "$OUT"
go build -o "$OUT/qat" ./cmd/qat
[ -d "$QAT_DATA/$DATA" ] || { echo "bench-int8: $QAT_DATA/$DATA missing: run scripts/fetch-data.sh" >&2; exit 1; }
"$PYTHON" -c 'import torch, onnx' 2>/dev/null || { echo "bench-int8: $PYTHON lacks torch or onnx: apt-get install python3-torch python3-onnx" >&2; exit 1; }
if [ ! -d "$ORT_DIR/node_modules/onnxruntime-node" ]; then
  mkdir -p "$ORT_DIR"
  (cd "$ORT_DIR" && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0 >&2)
fi

# GEMM, the same shapes, one thread each.
"$PYTHON" "$PEERS/ort/make_models.py" "$OUT" ${SHAPES//,/ }
GOMAXPROCS=1 "$OUT/qat" bench gemm --shapes "$SHAPES" --threads 1 --json > "$OUT/qat-gemm.jsonl"
models=()
for s in ${SHAPES//,/ }; do models+=("$OUT/mmi_$s.onnx" "$OUT/mmf_$s.onnx"); done
ORT_NODE="$ORT_DIR/node_modules/onnxruntime-node" THREADS=1 node "$PEERS/ort/bench.js" "${models[@]}" > "$OUT/ort-gemm.jsonl"

# lenet: float, QAT W8A8 and W4A4 (LSQ), exports, evaluation speed.
d="$OUT/$DATA-lenet"
GOMAXPROCS=1 "$OUT/qat" train --model lenet --data "$DATA" --epochs "$EPOCHS" --out "$d/float.safetensors" --json --quiet > "$d.float.json"
GOMAXPROCS=1 "$OUT/qat" finetune --from "$d/float.safetensors" --bits W8A8 --epochs 1 --out "$d/w8a8.safetensors" --json --quiet > "$d.w8a8.json"
GOMAXPROCS=1 "$OUT/qat" finetune --from "$d/float.safetensors" --bits W4A4 --learnable lsq --epochs 1 --out "$d/w4a4.safetensors" --json --quiet > "$d.w4a4.json"
for q in w8a8 w4a4; do
  "$OUT/qat" export --checkpoint "$d/$q.safetensors" --out "$d/$q.qmodel" --json > "$d.$q.export.json"
  "$OUT/qat" compare --checkpoint "$d/$q.safetensors" --model "$d/$q.qmodel" --data "$DATA" --json > "$d.$q.compare.json"
done
"$OUT/qat" export --checkpoint "$d/w8a8.safetensors" --out "$d/w8a8-fixed.qmodel" --requant fixed --json > "$d.w8a8-fixed.export.json"
"$OUT/qat" compare --checkpoint "$d/w8a8.safetensors" --model "$d/w8a8-fixed.qmodel" --data "$DATA" --json > "$d.w8a8-fixed.compare.json"
for r in 1 2 3; do
  GOMAXPROCS=1 "$OUT/qat" eval --model "$d/w8a8.qmodel" --data "$DATA" --json
  GOMAXPROCS=1 "$OUT/qat" eval --model "$d/float.safetensors" --data "$DATA" --json
  GOMAXPROCS=1 "$OUT/qat" eval --model "$d/w8a8.safetensors" --data "$DATA" --json
done > "$d.eval.jsonl"
OMP_NUM_THREADS=1 "$PYTHON" "$PEERS/torch_qat.py" "$QAT_DATA/$DATA" lenet 1 1 > "$d.torch.json"

"$PYTHON" - "$OUT" "$d" "$DATA" > "$OUT/results.md" <<'PY'
import json, os, sys
out, d, data = sys.argv[1:]
lines = lambda p: [json.loads(l) for l in open(p) if l.strip()]
qg = {(r["m"], r["k"], r["n"]): r for r in lines(f"{out}/qat-gemm.jsonl")}
og = {}
for r in lines(f"{out}/ort-gemm.jsonl"):
    og.setdefault((r["m"], r["k"], r["n"]), {})["int8" if r["model"].startswith("mmi_") else "f32"] = r["gops"]
print("## GEMM, one thread (best of 5 timed runs each)\n")
print("| MxKxN | qat int8 GOPS | ORT MatMulInteger GOPS | ratio | qat float32 GFLOP/s | ORT MatMul GFLOP/s | ratio |")
print("|---|---|---|---|---|---|---|")
for k, r in qg.items():
    o = og.get(k, {})
    print(f"| {'x'.join(map(str, k))} | {r['int8_gops']:.0f} ({r['kernel']}) | {o.get('int8', 0):.0f} | {r['int8_gops']/o['int8']:.2f}x "
          f"| {r['float32_gflops']:.0f} | {o.get('f32', 0):.0f} | {r['float32_gflops']/o['f32']:.2f}x |")
ev = lines(f"{d}.eval.jsonl")
best = {}
for r in ev:
    best[r["model"]] = max(best.get(r["model"], 0), r["samples_per_sec"])
acc = {r["model"]: r["accuracy"] for r in ev}
t = json.load(open(f"{d}.torch.json"))
i8, fl, fq = f"{d}/w8a8.qmodel", f"{d}/float.safetensors", f"{d}/w8a8.safetensors"
print(f"\n## lenet on {data} test (10000 images), one thread, best of 3\n")
print("| engine | accuracy | samples/s | qat int8 / this |")
print("|---|---|---|---|")
for name, a, s in [("qat int8 runtime (W8A8)", acc[i8], best[i8]), ("qat float eval (float checkpoint)", acc[fl], best[fl]),
                   ("qat fake-quant eval (QAT checkpoint)", acc[fq], best[fq]),
                   (f"{t['peer']} int8 ({t['engine']}, 1+1 epochs)", t["acc_int8"], t["int8_eval_sps"])]:
    print(f"| {name} | {100*a:.2f} | {s:.0f} | {best[i8]/s:.1f}x |")
print("\n## Export fidelity and size\n")
print("| model | argmax agreement | max diff (LSB) | exact samples | bytes | / checkpoint | / float32 params |")
print("|---|---|---|---|---|---|---|")
for q in ["w8a8", "w8a8-fixed", "w4a4"]:
    c = json.load(open(f"{d}.{q}.compare.json")); e = json.load(open(f"{d}.{q}.export.json"))
    fb = os.path.getsize(f"{d}/float.safetensors")
    print(f"| {q} ({e['requant']}) | {100*c['argmax_agreement']:.2f}% | {c['max_abs_diff_lsb']} | {100*c['exact_fraction']:.2f}% "
          f"| {e['bytes']} | {e['bytes']/fb:.3f}x float ckpt ({fb}) | {e['param_size_ratio']:.3f}x |")
PY
cat "$OUT/results.md"
