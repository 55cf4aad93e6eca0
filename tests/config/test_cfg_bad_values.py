"""Schema-wide bad values: every numeric key carries its valid range, and a value outside it
(or of the wrong type) given through the real CLI ``main([...])`` stops with ONE line that
names the key, before anything trains. Parametrised over the whole schema (new sections too)."""

from __future__ import annotations

import pytest
from annotated_types import Ge, Gt, Le, Lt

from clinfusion.cli.main import main
from schema_walk import walk

# numeric keys whose every real value is valid (commented in the schema)
UNBOUNDED = {
    "image.intensity.a_min",  # window bounds in the image's own units (e.g. -1000 HU); a_min < a_max checked
    "image.intensity.a_max",
    "evaluation.age_bands",  # cut points on any numeric subgroup column
}

NUMERIC = [leaf for leaf in walk() if leaf.kind in ("number", "list")]


def _bad_values(leaf):
    """One value beyond each bound, a number outside the Literal choices, and a wrong type."""
    out = []
    if leaf.choices:
        out.append(max(leaf.choices) + 1)
    for b in leaf.bounds:
        step = 1 if leaf.is_int else 0.5
        if isinstance(b, Gt):
            out.append(b.gt)
        elif isinstance(b, Ge):
            out.append(b.ge - step)
        elif isinstance(b, Lt):
            out.append(b.lt)
        elif isinstance(b, Le):
            out.append(b.le + step)
    return out + ["abc"]


def _as_override(leaf, value):
    if leaf.kind == "number":
        return f"{leaf.key}={value}", f"'{leaf.key}'"
    default = leaf.owner.model_fields[leaf.name].get_default(call_default_factory=True) or [1, 1]
    items = [value] + list(default[1:]) if len(default) > 1 else [value, *([1] * (len(default) == 0))]
    return f"{leaf.key}=[{', '.join(map(str, items))}]", f"'{leaf.key}[0]'"


def test_every_numeric_key_has_a_range():
    unranged = [leaf.key for leaf in NUMERIC if not leaf.bounds and not leaf.choices and leaf.key not in UNBOUNDED]
    assert unranged == [], f"numeric config keys without a valid range in the schema: {unranged}"


@pytest.mark.parametrize("leaf", [leaf for leaf in NUMERIC if leaf.key not in UNBOUNDED], ids=lambda leaf: leaf.key)
def test_out_of_range_and_wrong_type_give_one_line(leaf, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 0\n")
    for value in _bad_values(leaf):
        override, named = _as_override(leaf, value)
        # pretrain would train after loading the config: --print-config stops right after validation,
        # so a return code of 2 with the key named proves the check runs before any training
        assert main(["pretrain", str(cfg), override, "--out", str(tmp_path / "run"), "--print-config"]) == 2, override
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and named in err, (override, err)
        assert not (tmp_path / "run").exists()
