"""Every accepted config key is read: a key nothing reads would be silently ignored.

For each field of the schema (every section, walked from RunConfig), some package module
other than the schema must access it (``.field`` attribute access or a ``"field"`` key).
A generic name can be matched by an unrelated access; a key that matches nothing is
certainly dead. Exceptions must be listed, with the reason, in READ_ELSEWHERE.
"""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from clinfusion.config.schema import RunConfig
from schema_walk import _strip_optional, walk

PACKAGE = Path(__file__).resolve().parents[2] / "clinfusion"
SCHEMA_FILES = {PACKAGE / "config" / "schema.py"}

# key -> why no attribute access names it (keep empty unless unavoidable)
READ_ELSEWHERE: dict = {}


def _source() -> str:
    return "\n".join(p.read_text() for p in sorted(PACKAGE.rglob("*.py")) if p not in SCHEMA_FILES)


SOURCE = _source()


def _sections(model, prefix=""):
    """(dotted key, field name) of every field, section fields included."""
    for name, field in model.model_fields.items():
        yield prefix + name, name
        ann = _strip_optional(field.annotation)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _sections(ann, f"{prefix}{name}.")


def test_walk_covers_leaves_and_the_check_catches_a_dead_key():
    assert {leaf.key for leaf in walk()} >= {"pretrain.lr", "cohort.on_bad_image", "image.volumes_4d"}
    assert not re.search(r"\.zz_never_read_key\b", SOURCE)  # what a dead key looks like to the check
    assert "split.folds" not in dict(_sections(RunConfig))  # accepted-and-ignored keys were removed


@pytest.mark.parametrize("key, name", list(_sections(RunConfig)), ids=lambda v: str(v))
def test_every_config_key_is_read(key, name):
    if key in READ_ELSEWHERE:
        return
    pattern = re.compile(rf"\.{re.escape(name)}\b|[\"']{re.escape(name)}[\"']")
    assert pattern.search(SOURCE), (f"config key {key!r} is accepted by the schema but no module reads "
                                    f"'.{name}': use it or remove it")
