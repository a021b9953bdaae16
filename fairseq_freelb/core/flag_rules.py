"""Which ``--adv-*`` flags act at a given method and K: the rule that refuses inert flags.

Pure Python (no torch, no fairseq), so the table can be read and tested on its
own. :func:`inert_flags` is what ``validate_adversarial_config`` uses to refuse
a flag that was set but cannot change training (issue 12, item 15), e.g. the
default ``--adv-steps 1`` with ``--adv-lr 0.1``: FreeLB then makes one pass at
delta_0 and never takes the ascent step that ``--adv-lr`` sizes.

What each method does per minibatch (the method steps of core/adversary.py, core/yopo.py and core/freeat.py), with K =
``--adv-steps`` and n = ``--yopo-inner-steps``:

===========  ================================  ==========================  ====================
method       forward/backward passes           ascent steps that reach     passes that share
                                               a later pass                dropout masks
===========  ================================  ==========================  ====================
freelb       K (Algorithm 1)                   K - 1                       K
pgd          K delta-only + 1 descent          K                           K + 1
freeat       K replays, one update each        K - 1 (the last is dropped) K
yopo         K full passes                     (K - 1) * n                 K
none         1                                 0                           1
===========  ================================  ==========================  ====================

A flag acts only through one of these:

* ``--adv-lr`` (alpha) sizes the ascent steps: inert without one.
* ``--adv-max-norm`` (epsilon) is applied after each ascent step (delta_0 is
  used unprojected in the first pass): inert without an ascent step, and
  inert when delta stays 0 (``--adv-lr 0`` and ``--adv-init-mag 0``).
* ``--adv-norm-type`` shapes delta_0 (when ``--adv-init-mag`` > 0) and the
  ascent steps (when ``--adv-lr`` > 0): inert when neither happens.
* ``--adv-init-mag`` draws delta_0, used in the first pass of every method but none.
* ``--yopo-inner-steps`` splits YOPO's ascent steps: inert unless
  ``--adv-method yopo``, K >= 2 and ``--adv-lr`` > 0.
* ``--adv-resample-dropout`` redraws masks between passes: inert with one pass.
* ``--adv-train-subset`` names the split FreeAT replays: inert for other methods.
* ``--adv-begin-update`` switches from plain fine-tuning to the method: inert
  when the method's step at these values is plain fine-tuning anyway
  (:func:`is_plain_fine_tuning`).
* ``--adv-steps``: inert for ``--adv-method none`` only (K identical passes at
  delta = 0 stay allowed: a documented control run).

``--adv-method none`` ignores every ``--adv-*`` flag by definition; the
launch scripts' vanilla baselines (``ADV_METHOD=none``) and the robustness
attack pass the adversarial runs' flags unchanged, so for ``none`` the caller
logs the ignored flags instead of refusing them.
"""

from typing import Callable, Dict, List, Mapping, NamedTuple, Optional

MIN_STEPS_FOR_ASCENT = {"freelb": 2, "pgd": 1, "freeat": 2, "yopo": 2, "none": None}


def ascent_steps(method: str, steps: int, yopo_inner_steps: int = 1) -> int:
    """How many ascent steps per minibatch produce a delta that a later pass uses."""
    if method == "freelb" or method == "freeat":
        return max(steps - 1, 0)
    if method == "pgd":
        return steps
    if method == "yopo":
        return max(steps - 1, 0) * yopo_inner_steps
    return 0


def passes_per_minibatch(method: str, steps: int) -> int:
    """How many forward/backward passes per minibatch replay one set of dropout masks."""
    return {"freelb": steps, "pgd": steps + 1, "freeat": steps, "yopo": steps}.get(method, 1)


def _single_pass(v: Mapping) -> str:
    """Why a method has no ascent step at this K, and the fix (names --adv-steps)."""
    method, k = v["adv_method"], v["adv_steps"]
    what = {
        "freelb": "one pass at delta_0 and no ascent step",
        "freeat": "one replay per minibatch, whose ascent step no later replay uses",
        "yopo": "one full pass and no ascent step",
    }[method]
    return (
        f"--adv-method {method} at --adv-steps {k} makes {what}; use --adv-steps "
        f"{MIN_STEPS_FOR_ASCENT[method]} or more (K passes: the official scripts' --adv-steps m is m+1 here)"
    )


def _none(v: Mapping) -> str:
    return "--adv-method none is plain fine-tuning and ignores every --adv-* flag"


def _lr(v: Mapping) -> Optional[str]:
    if v["adv_method"] == "none":
        return _none(v)
    if ascent_steps(v["adv_method"], v["adv_steps"], v["yopo_inner_steps"]) == 0:
        return _single_pass(v)
    return None


def _max_norm(v: Mapping) -> Optional[str]:
    reason = _lr(v)
    if reason is None and v["adv_lr"] == 0 and v["adv_init_mag"] == 0:
        reason = "with --adv-lr 0 and --adv-init-mag 0 delta stays 0, so no ball is ever reached; set --adv-lr"
    return reason


def _norm_type(v: Mapping) -> Optional[str]:
    if v["adv_method"] == "none":
        return _none(v)
    if v["adv_init_mag"] > 0:
        return None  # shapes delta_0
    stepping = ascent_steps(v["adv_method"], v["adv_steps"], v["yopo_inner_steps"]) > 0
    if not stepping:
        return _single_pass(v) + ", or set --adv-init-mag"
    if v["adv_lr"] == 0:
        return "with --adv-lr 0 and --adv-init-mag 0 delta stays 0; set --adv-lr or --adv-init-mag"
    return None


def _init_mag(v: Mapping) -> Optional[str]:
    return _none(v) if v["adv_method"] == "none" else None


def _yopo_inner(v: Mapping) -> Optional[str]:
    if v["adv_method"] != "yopo":
        return f"--adv-method {v['adv_method']} has no inner steps (only --adv-method yopo uses it)"
    if v["adv_steps"] < 2:
        return _single_pass(v)
    if v["adv_lr"] == 0:
        return "with --adv-lr 0 the inner steps do not move delta; set --adv-lr"
    return None


def _resample(v: Mapping) -> Optional[str]:
    if v["adv_method"] == "none":
        return _none(v)
    if passes_per_minibatch(v["adv_method"], v["adv_steps"]) < 2:
        return _single_pass(v)
    return None


def _train_subset(v: Mapping) -> Optional[str]:
    if v["adv_method"] != "freeat":
        return f"--adv-method {v['adv_method']} replays no batches (only --adv-method freeat uses it)"
    return None


def _method_only(v: Mapping) -> Optional[str]:
    return _none(v) if v["adv_method"] == "none" else None


def is_plain_fine_tuning(v: Mapping) -> bool:
    """Whether the method's step at these values gives plain fine-tuning's update: delta stays 0 and
    nothing else differs (K identical passes average to the single pass's gradient)."""
    method, k = v["adv_method"], v["adv_steps"]
    if method == "none":
        return True
    if v["adv_init_mag"] > 0:
        return False
    if method == "pgd":  # the descent pass at delta = 0 alone makes the update
        return v["adv_lr"] == 0
    if method == "freeat":  # K >= 2 replays make K updates on one minibatch
        return k == 1
    moves = k >= 2 and v["adv_lr"] > 0
    return not moves and not (k >= 2 and v["adv_resample_dropout"])


def _begin_update(v: Mapping) -> Optional[str]:
    if v["adv_method"] == "none":
        return _none(v)
    if is_plain_fine_tuning(v):
        return (
            f"--adv-method {v['adv_method']} at these flags already trains like plain fine-tuning (delta stays 0), "
            "so there is nothing to begin; set --adv-lr and --adv-steps (or --adv-init-mag)"
        )
    return None


# field name -> why the flag is inert for these values (None: it acts). Order = message order.
INERT_RULES: Dict[str, Callable[[Mapping], Optional[str]]] = {
    "adv_steps": _method_only,
    "adv_lr": _lr,
    "adv_max_norm": _max_norm,
    "adv_init_mag": _init_mag,
    "adv_norm_type": _norm_type,
    "yopo_inner_steps": _yopo_inner,
    "adv_resample_dropout": _resample,
    "adv_begin_update": _begin_update,
    "adv_train_subset": _train_subset,
}


class InertFlag(NamedTuple):
    field: str
    value: object
    reason: str

    @property
    def flag(self) -> str:
        name = "--" + self.field.replace("_", "-")
        return name if isinstance(self.value, bool) else f"{name} {self.value}"


def inert_flags(values: Mapping, defaults: Mapping) -> List[InertFlag]:
    """The flags of ``values`` that differ from ``defaults`` yet cannot change training.

    ``values`` and ``defaults`` map the :data:`INERT_RULES` field names to plain
    Python values (method and norm type as strings).
    """
    found = []
    for name, rule in INERT_RULES.items():
        if values[name] != defaults[name]:
            reason = rule(values)
            if reason is not None:
                found.append(InertFlag(name, values[name], reason))
    return found


def describe(flags: List[InertFlag]) -> str:
    """One line: each group of flags sharing a reason, then that reason."""
    groups: Dict[str, List[str]] = {}
    for item in flags:
        groups.setdefault(item.reason, []).append(item.flag)
    parts = []
    for reason, names in groups.items():
        subject = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        verb = "has" if len(names) == 1 else "have"
        parts.append(f"{subject} {verb} no effect: {reason}")
    return "; ".join(parts)
