"""A constant is written once and the environment is read in one place (docs/architecture.md).

These read the sources: a second copy of a port, of the message limit or of the default
model's name, or an ``os.environ`` outside ``argus/config.py``, fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for folder in ("include/argus", "plugins", "jobs", "dags") for p in (ROOT / folder).rglob("*.py"))
#: modules that read a third-party program's own variables where that program needs them
THIRD_PARTY_ENV = {"include/argus/cli/main.py": "TF_CPP_MIN_LOG_LEVEL",
                   "include/argus/detect/devices.py": "KERAS_BACKEND"}


def _where(pattern: str) -> list[str]:
    found = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    return found


def test_the_environment_is_read_in_config_only():
    readers = {where.split(":")[0] for where in _where(r"\bos\.environ\b")}
    assert readers - {"include/argus/config.py"} <= set(THIRD_PARTY_ENV), sorted(readers)
    for module, variable in THIRD_PARTY_ENV.items():  # each says which program's variable it reads
        assert variable in (ROOT / module).read_text()


def test_ports_message_limit_and_default_model_are_each_defined_once():
    assert _where(r"\b(9090|9091)\b") == [w for w in _where(r"\b(9090|9091)\b") if w.startswith("include/argus/config.py")]
    assert [w.split(":")[0] for w in _where(r"16 \* 2\s*\*\*\s*20")] == ["include/argus/live/message.py"]
    model = [w.split(":")[0] for w in _where(r"[\"']centernet-coco[\"']")]
    assert model == ["include/argus/detect/centernet.py"], model  # the backend's own name; models.yaml sets the default


def test_no_two_test_modules_share_a_name():
    # the tests folders are not packages: pytest imports each module by its bare name, and a
    # second module of the same name stops the whole collection (a unit run alone cannot see it)
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
