#!/usr/bin/env bash
# CoLA: fairseq's RoBERTa GLUE hyperparameters and the FreeLB paper's Table 7 (README.md, section GLUE).
# Environment variables and arguments: see common.sh. Example:
#   ROBERTA_PATH=roberta.large/model.pt ADV_METHOD=freelb SEED=1 examples/roberta_glue/cola.sh
set -euo pipefail
TASK=CoLA
NUM_CLASSES=2
LR=${LR:-1e-5}
BSZ=${BSZ:-16}
TOTAL_UPDATES=${TOTAL_UPDATES:-5336}
WARMUP_UPDATES=${WARMUP_UPDATES:-320}
TABLE7_EPS=0.2    # epsilon: --adv-max-norm
TABLE7_ALPHA=0.025  # alpha: --adv-lr
TABLE7_M=3      # m ascent steps: --adv-steps m+1 passes
TASK_FLAGS=(--report-mcc --best-checkpoint-metric mcc --maximize-best-checkpoint-metric)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
