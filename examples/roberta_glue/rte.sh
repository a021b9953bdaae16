#!/usr/bin/env bash
# RTE: fairseq's RoBERTa GLUE hyperparameters and the FreeLB paper's Table 7 (README.md, section GLUE).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/rte.sh
set -euo pipefail
TASK=RTE
NUM_CLASSES=2
LR=${LR:-2e-5}
BSZ=${BSZ:-16}
TOTAL_UPDATES=${TOTAL_UPDATES:-2036}
WARMUP_UPDATES=${WARMUP_UPDATES:-122}
TABLE7_EPS=0.15    # epsilon: --adv-max-norm
TABLE7_ALPHA=0.03  # alpha: --adv-lr
TABLE7_M=3      # m ascent steps: --adv-steps m+1 passes
TASK_FLAGS=(--best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
