"""What a criterion provides to the adversary: the criterion contract.

An adversarial criterion (``freelb_sentence_prediction``,
``freelb_sentence_ranking``, or your own; the fairseq base class is
:class:`fairseq_freelb.adapters.criterion_base.AdversarialCriterionBase`) provides:

* ``adversary``: the :class:`~fairseq_freelb.core.adversary.Adversary` built from its ``--adv-*`` config;
* ``adversarial_inputs(sample)``: the ``net_input`` dicts of the model calls
  its ``forward`` makes for one minibatch, in call order (one for sentence
  prediction, C for a C-choice question). Their token embeddings together
  form one example's perturbation: delta is drawn, normalised and projected
  per example over all of them (appendix A.1 of Zhu et al. 2020);
* optionally ``adversarial_masks(sample, masks)``: narrows the non-pad masks
  of those calls (e.g. the placeholder rows of missing multiple-choice
  answers), so more than pads stays at zero;
* optionally, for models that are not fairseq encoders (the Hugging Face
  adapter), ``token_embedding(model)``: the module whose output delta is added
  to (default: the fairseq encoder's ``embed_tokens``), and
  ``token_masks(inputs)``: the real tokens of each call (default: the
  ``src_tokens`` that are not ``padding_idx``).
"""

from typing import List, Protocol, runtime_checkable

from torch import Tensor, nn

from fairseq_freelb.core.model_access import token_embedding_module


@runtime_checkable
class AdversarialCriterion(Protocol):
    """The criterion side of an adversarial step (see the module docstring)."""

    adversary: object

    def adversarial_inputs(self, sample) -> List[dict]:
        ...

    def __call__(self, model, sample):
        ...


def perturbed_embedding(model: nn.Module, criterion) -> nn.Module:
    """The module whose output delta is added to: the criterion's ``token_embedding(model)``, or fairseq's."""
    own = getattr(criterion, "token_embedding", None)
    return own(model) if own is not None else token_embedding_module(model)


def example_inputs(sample, model: nn.Module, criterion):
    """A minibatch's model inputs, the token-embedding module, and the masks of what may move.

    The masks are the real tokens of each of ``criterion.adversarial_inputs(sample)``
    (the criterion's ``token_masks(inputs)``, or the non-pad ``src_tokens``),
    narrowed by the criterion's optional ``adversarial_masks(sample, masks)``.
    """
    inputs = criterion.adversarial_inputs(sample)
    embed = perturbed_embedding(model, criterion)
    own_masks = getattr(criterion, "token_masks", None)
    if own_masks is not None:
        masks: List[Tensor] = own_masks(inputs)
    else:
        masks = [net_input["src_tokens"].ne(embed.padding_idx) for net_input in inputs]
    narrow = getattr(criterion, "adversarial_masks", None)
    if narrow is not None:
        masks = narrow(sample, masks)
    return inputs, embed, masks
