"""``--arch roberta_hf``: fairseq's RoBERTa with a configurable LayerNorm epsilon.

fairseq builds every LayerNorm of RoBERTa with eps = 1e-5 and has no flag for it.
BERT checkpoints (and MiniLM) were trained with eps = 1e-12; with 1e-5 instead the
final hidden states of all-MiniLM-L6-v2 move by about 2e-3, so a converted BERT would
not be the same function. This model is ``RobertaModel`` unchanged except that after
building it sets ``eps`` of each of its own LayerNorm modules to ``--layer-norm-eps``.
The state-dict layout, the hub interface (``RobertaModel.from_pretrained``) and the
``encoder.sentence_encoder.embed_tokens`` module the adversarial step perturbs are
those of ``roberta``. ``python -m fairseq_freelb.convert_hf`` emits ``--arch
roberta_hf`` only when the source's epsilon differs from fairseq's.
"""

import torch
from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta.model import RobertaModel, base_architecture
from fairseq.utils import safe_getattr

FAIRSEQ_LAYER_NORM_EPS = 1e-5


def set_layer_norm_eps(module: torch.nn.Module, eps: float) -> int:
    """Set ``eps`` of every LayerNorm inside ``module``; returns how many were set."""
    count = 0
    for sub in module.modules():
        # torch.nn.LayerNorm on CPU, apex's FusedLayerNorm on CUDA: both keep eps as an attribute.
        if isinstance(sub, torch.nn.LayerNorm) or type(sub).__name__ == "FusedLayerNorm":
            sub.eps = eps
            count += 1
    return count


@register_model("roberta_hf")
class RobertaHFModel(RobertaModel):
    """RoBERTa whose LayerNorm epsilon comes from ``--layer-norm-eps`` (e.g. 1e-12 for BERT)."""

    @staticmethod
    def add_args(parser):
        RobertaModel.add_args(parser)
        parser.add_argument(
            "--layer-norm-eps", type=float, metavar="EPS",
            help="epsilon of every LayerNorm (fairseq's RoBERTa: 1e-5; BERT/MiniLM checkpoints: 1e-12)",
        )

    @classmethod
    def build_model(cls, args, task):
        roberta_hf_architecture(args)
        model = super().build_model(args, task)
        set_layer_norm_eps(model, args.layer_norm_eps)
        return model

    def register_classification_head(self, name, num_classes=None, inner_dim=None, **kwargs):
        super().register_classification_head(name, num_classes, inner_dim, **kwargs)
        # fairseq's heads have no LayerNorm today; keep any future one consistent.
        set_layer_norm_eps(self.classification_heads[name], self.args.layer_norm_eps)


@register_model_architecture("roberta_hf", "roberta_hf")
def roberta_hf_architecture(args):
    args.layer_norm_eps = safe_getattr(args, "layer_norm_eps", FAIRSEQ_LAYER_NORM_EPS)
    base_architecture(args)
