"""The FreeLB grid: settings named by their values, the default grid per task, and the baselines at FreeLB's cost.

A FreeLB setting's name is its spec: ``freelb-k3-a0.03-e0.15-m0.1`` is K = 3
passes (``--adv-steps``), step alpha = 0.03 (``--adv-lr``), l2 radius
epsilon = 0.15 (``--adv-max-norm``), random start M = 0.1 (``--adv-init-mag``).
``--grid`` takes a comma-separated list of such names, or ``table7`` for the
task's default.

Default grids:

- a GLUE task: its row of the paper's Table 7 (:data:`.paper.TABLE7`,
  K = m + 1 passes) and two neighbours with alpha, epsilon and M halved and
  doubled (the radius is the setting the paper tunes most; K, the cost, stays);
- multiple choice: the launch scripts' starting values (K 3, alpha 0.1, M 0.1)
  at two radii, epsilon 0.3 and 0.6;
- the demo's task (``--preset rt-minilm``): :data:`.runs.FREELB_GRID`.

``--methods pgd,freeat,yopo`` add one row each at the grid's first setting's
alpha, epsilon and M, and at its cost (the same number of forward/backward
passes per minibatch), untuned, as the demo's baselines are.
"""

import re
from typing import List, Optional, Sequence

from fairseq_freelb.commands import CommandError
from fairseq_freelb.experiment.paper import TABLE7
from fairseq_freelb.experiment.runs import BASELINES, FREELB_GRID, Setting, _adv

NAME = re.compile(r"^freelb-k(?P<k>\d+)-a(?P<a>[0-9.e+-]+)-e(?P<e>[0-9.e+-]+)-m(?P<m>[0-9.e+-]+)$")
GRID_HELP = "comma-separated FreeLB settings named freelb-k<K>-a<alpha>-e<epsilon>-m<init>, or table7 (the default)"


def _g(value: float) -> str:
    return f"{value:g}"


def freelb(k: int, alpha: float, epsilon: float, init_mag: float) -> Setting:
    name = f"freelb-k{k}-a{_g(alpha)}-e{_g(epsilon)}-m{_g(init_mag)}"
    return Setting(name, "freelb", _adv("freelb", k, _g(alpha), _g(epsilon), _g(init_mag)), k)


def parse(name: str) -> Setting:
    """The setting a name describes; a name that is not a spec is refused in one line."""
    known = {s.name: s for s in FREELB_GRID}
    if name in known:
        return known[name]
    match = NAME.match(name)
    if not match:
        raise CommandError(f"--grid: unknown {[name]} ({GRID_HELP}, e.g. freelb-k3-a0.03-e0.15-m0.1)")
    try:
        k, a, e, m = int(match["k"]), float(match["a"]), float(match["e"]), float(match["m"])
    except ValueError:
        raise CommandError(f"--grid: unknown {[name]} ({GRID_HELP})") from None
    if k < 2 or a <= 0 or e < 0 or m < 0:
        raise CommandError(f"--grid {name}: FreeLB needs K >= 2 passes and alpha > 0 to take any ascent step")
    return freelb(k, a, e, m)


def default_grid(task: Optional[str], kind: str) -> List[Setting]:
    """The default FreeLB grid of a GLUE task, of multiple choice, or of the demo's task (``task`` None)."""
    if kind == "mc":
        return [freelb(3, 0.1, 0.3, 0.1), freelb(3, 0.1, 0.6, 0.1)]
    if task is None:
        return list(FREELB_GRID)
    row = TABLE7[task]
    k = row.m + 1
    return [freelb(k, row.alpha, row.epsilon, row.init_mag),
            freelb(k, row.alpha / 2, row.epsilon / 2, row.init_mag / 2),
            freelb(k, row.alpha * 2, row.epsilon * 2, row.init_mag * 2)]


def grid(spec: Optional[str], task: Optional[str], kind: str, preset_grid: Sequence[str] = ()) -> List[Setting]:
    """``--grid``: the names given, ``table7``/nothing for the default, each once."""
    if not spec:
        return [parse(n) for n in preset_grid] if preset_grid else default_grid(task, kind)
    names = [n for n in spec.split(",") if n]
    if not names:
        raise CommandError(f"--grid: unknown empty ({GRID_HELP})")
    settings: List[Setting] = []
    for name in names:
        settings += default_grid(task, kind) if name == "table7" else [parse(name)]
    if len({s.name for s in settings}) != len(settings):
        raise CommandError(f"--grid {spec}: a setting is listed twice")
    return settings


def baselines(families: Sequence[str], first: Setting, demo: bool) -> List[Setting]:
    """PGD, FreeAT and YOPO rows at the cost of ``first`` (the demo's task keeps its fixed rows)."""
    if demo:
        return [BASELINES[m] for m in families if m in BASELINES]
    match = NAME.match(first.name)
    k, a, e, m = int(match["k"]), match["a"], match["e"], match["m"]
    rows = {
        # PGD: K - 1 ascent passes on delta alone, then one descent pass: K passes.
        "pgd": Setting(f"pgd-k{k - 1}-a{a}-e{e}-m{m}", "pgd", _adv("pgd", k - 1, a, e, m), k),
        # FreeAT: K replays of each minibatch, each one forward/backward and one update.
        "freeat": Setting(f"freeat-k{k}-a{a}-e{e}-m{m}", "freeat", _adv("freeat", k, a, e, m), k, k),
        # YOPO: K full passes, 3 cheap inner steps each.
        "yopo": Setting(f"yopo-{k}-3-a{a}-e{e}-m{m}", "yopo", _adv("yopo", k, a, e, m, "--yopo-inner-steps", "3"), k),
    }
    return [rows[f] for f in families if f in rows]
