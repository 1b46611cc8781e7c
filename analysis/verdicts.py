"""What is said of a paired comparison: the sentences under a table.

The numbers come from `analysis.pairings`; this module only words them: per pairing a verdict
(`verdict`), per table the sentences under it (`comparison_sentences`) and the heading of its
comparison (`comparison_heading`).
"""

from __future__ import annotations

from analysis.pairings import Pairing
from analysis.significance import ALPHA, Bootstrap
from analysis.tables import Table
from lightning_modules.pruning.registry import proposed


def bootstrap_text(result: Bootstrap) -> str:
    """`−0.012 [−0.020, −0.004], p = 0.002`."""
    p = f"p < {1 / result.samples:g}" if result.p <= 1 / result.samples else f"p = {result.p:.3g}"
    return f"{result.difference:+.3f} [{result.low:+.3f}, {result.high:+.3f}], {p}"


def verdict_word(pairing: Pairing) -> str:
    """`wins`, `loses` or `ties` by the paired bootstrap at p < ALPHA; `untested` without
    one."""
    result = pairing.bootstrap
    if result is None:
        return "untested"
    if not result.significant:
        return "ties"
    return "wins" if result.difference < 0 else "loses"


def _seed_verdict(pairing: Pairing) -> str:
    """The proposed method against a baseline, from the seed-by-seed differences."""
    at, system, baseline = pairing.at, pairing.system, pairing.baseline
    n, mean = len(pairing.differences), pairing.mean
    spread = "one seed, so no spread: not conclusive" if n == 1 else f"{n} seeds"
    if mean > 0:
        return (
            f"{at}, {system} does not win: its test WER is {mean:.3f} higher than "
            f"{baseline}'s ({spread})."
        )
    if mean == 0:
        return f"{at}, {system} does not win: it ties with {baseline} ({spread})."
    if pairing.wins < n:
        return (
            f"{at}, {system} is {-mean:.3f} better than {baseline} on average but wins on "
            f"only {pairing.wins} of {n} seeds."
        )
    return f"{at}, {system} wins: its test WER is {-mean:.3f} lower than {baseline}'s ({spread})."


def _bootstrap_sentence(pairing: Pairing) -> str:
    result = pairing.bootstrap
    if result is None:
        return f" No paired bootstrap: {pairing.bootstrap_note}." if pairing.bootstrap_note else ""
    return (
        f" Paired bootstrap over {result.utterances} utterances × {result.seeds} seed(s): "
        f"{result.verdict} ({bootstrap_text(result)})."
    )


def verdict(pairing: Pairing) -> str:
    """What one pairing says, seeds and bootstrap (main table: the proposed method against a
    baseline; ablation: a variant against full CSP)."""
    if pairing.baseline is None:
        return f"{pairing.at}, no comparison: {pairing.missing} has no result."
    if pairing.kind != "main":
        at = f"{pairing.at}, {pairing.system} against {pairing.baseline}"
        if not pairing.seeds:
            return f"{at}: no comparison, no complete seed in both."
        said = f"{at}: test WER {pairing.mean:+.3f} on average over {len(pairing.seeds)} seed(s)."
        return said + _bootstrap_sentence(pairing)
    if not pairing.seeds:
        return (
            f"{pairing.at}, no comparison: {pairing.system} and {pairing.baseline} "
            "share no complete seed."
        )
    return _seed_verdict(pairing) + _bootstrap_sentence(pairing)


def comparison_sentences(table: Table, pairings: list[Pairing]) -> list[str]:
    """What to say under a table. Main table: per sparsity, the verdict against the best
    baseline, then the paired bootstrap's verdict against every baseline in one sentence.
    Ablation table: every variant's verdict."""
    if table.kind != "main":
        return [verdict(pairing) for pairing in pairings]
    sentences = []
    for sparsity in table.sparsities:
        here = [p for p in pairings if p.sparsity == sparsity]
        sentences += [verdict(p) for p in here if p.best or p.baseline is None]
        tested = [p for p in here if p.bootstrap is not None]
        if len(tested) < 2:
            continue
        better = [p for p in tested if p.bootstrap.significant and p.bootstrap.difference < 0]
        worse = [p for p in tested if p.bootstrap.significant and p.bootstrap.difference > 0]
        groups = {
            "wins against": [p.baseline for p in better],
            "loses against": [p.baseline for p in worse],
            "shows no significant difference with": [
                p.baseline for p in tested if p not in better and p not in worse
            ],
        }
        said = "; ".join(f"{verb} {', '.join(names)}" for verb, names in groups.items() if names)
        sentences.append(
            f"{table.where(sparsity)}, against each of {len(tested)} baselines "
            f"(paired bootstrap, p < {ALPHA:g}): {tested[0].system} {said}."
        )
    return sentences


def comparison_heading(table: Table) -> str:
    """What a table's pairings compare."""
    studied = proposed()
    title = studied.title if studied is not None else "the proposed method"
    if table.kind == "main":
        return f"{title} against each baseline"
    return f"Each variant against full {title}"
