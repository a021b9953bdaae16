#!/usr/bin/env bash
# STS-B: fairseq's RoBERTa GLUE hyperparameters and the FreeLB paper's Table 7 (README.md, section GLUE).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/stsb.sh
set -euo pipefail
TASK=STS-B
NUM_CLASSES=1
LR=${LR:-2e-5}
BSZ=${BSZ:-16}
TOTAL_UPDATES=${TOTAL_UPDATES:-3598}
WARMUP_UPDATES=${WARMUP_UPDATES:-214}
TABLE7_EPS=0.3    # epsilon: --adv-max-norm
TABLE7_ALPHA=0.1  # alpha: --adv-lr
TABLE7_M=3      # m ascent steps: --adv-steps m+1 passes
TASK_FLAGS=(--regression-target --report-pearson-and-spearman --best-checkpoint-metric loss)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
