#!/usr/bin/env bash
# SST-2: fairseq's RoBERTa GLUE hyperparameters and the FreeLB paper's Table 7 (README.md, section GLUE).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/sst2.sh
set -euo pipefail
TASK=SST-2
NUM_CLASSES=2
LR=${LR:-1e-5}
BSZ=${BSZ:-32}
TOTAL_UPDATES=${TOTAL_UPDATES:-20935}
WARMUP_UPDATES=${WARMUP_UPDATES:-1256}
TABLE7_EPS=0.6    # epsilon: --adv-max-norm
TABLE7_ALPHA=0.1  # alpha: --adv-lr
TABLE7_M=2      # m ascent steps: --adv-steps m+1 passes
TASK_FLAGS=(--best-checkpoint-metric accuracy --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
