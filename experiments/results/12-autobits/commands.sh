#!/bin/sh
# Reproduces experiments/README.md section 12 from the repository root
# (MNIST fetched by scripts/fetch-data.sh). The float model is the common
# setup of the experiments: lenet, 2 epochs on the first 20000 images.
set -e
go build -o qat ./cmd/qat
./qat train --model lenet --data mnist --limit 20000 --epochs 2 --out experiments/results/12-autobits/work/mnist-float.safetensors
./qat autobits --from experiments/results/12-autobits/work/mnist-float.safetensors --budget-bytes 42468 --limit 20000 \
  --latency-runs 101 --out experiments/results/12-autobits/work/mnist-autobits.safetensors --report experiments/results/12-autobits
