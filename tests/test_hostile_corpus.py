"""Issue 10: a bounded subset of the hostile-input corpus (tests/hostile) in the test suite.

About 60 cases across the six families (images, pairs CSVs, configs,
damaged galleries, import files, MQTT commands), each an `edge` subprocess
(the MQTT ones against a running door and a real Mosquitto). Every case must
end without a traceback or a hang, name no stranger and no person from
damaged rows, lose no committed row, and keep every bomb under 500 MiB.
The whole corpus (about 1,900 cases) runs with `benchmarks/hostile.py`.
"""

from __future__ import annotations

import os
import shutil

import pytest

from hostile import generate, runner

pytestmark = pytest.mark.slow  # ~60 edge subprocesses, a broker

PER_FAMILY = {"images": 5, "pairs": 4, "configs": 5, "gallery": 6, "imports": 4, "mqtt": 5}

ALWAYS = (
    # The cases the issue names, whatever the spread picks.
    "identify:png-ihdr-30000x30000", "identify:jpeg-sof-30000x30000", "identify:png-ihdr-65535x1",
    "identify:png-deflate-12000x12000", "identify:empty-jpg", "identify:invalid-utf8-name", "identify:newline-name",
    "pairs:bom", "pairs:short-row", "pairs:same-yes", "pairs:no-header", "pairs:huge-line-16MB-no-newline",
    "validate:bom", "validate:env-unset", "validate:unknown-key", "validate:binary", "validate:deep-array",
    "run:folder-fps-tiny",
    "identify:rows-header-flip-8", "identify:rows-committed-zeroed", "door-biden:sqlite-page2-junk",
    "list:missing-lock", "identify:sqlite-page3-junk",
    "import:not-a-zip", "import:npy-float64", "import:npy-nan", "import:row-identity-dotdot", "import:zip-bomb-2GB",
    "import:zip-encrypted-flag",
    "mqtt:command/remove:name-nul", "mqtt:command/enroll:junk", "mqtt:command/remove:huge-1MB",
    "retained:command/remove:{\"name\": \"obama\"}",
    # What the first full runs found (benchmarks/results/hostile.txt); run:source-index-99 (a 90 s hang) stays
    # in the benchmark only.
    "pairs:nul-bytes", "validate:deep-dotted-key", "validate:dev-zero", "list:rows-swapped-for-dir",
    "import:zip-bitflip-6", "import:zip-bomb-600MB", "import:dev-zero", "identify:rows-committed-flip-4330",
)


def corpus_subset() -> list[generate.Case]:
    cases = generate.all_cases(seed=10)
    chosen = {c.name: c for c in generate.subset(cases, PER_FAMILY)}
    by_name = {c.name: c for c in cases}
    for name in ALWAYS:
        key = name if name in by_name else f"mqtt:{name}"
        if key in by_name:
            chosen[key] = by_name[key]
    return list(chosen.values())


def test_the_corpus_is_large_deterministic_and_covers_every_family():
    first, second = generate.all_cases(seed=10), generate.all_cases(seed=10)
    assert len(first) >= 1000
    assert [c.name for c in first] == [c.name for c in second]
    assert first == second
    assert {c.family for c in first} == set(generate.FAMILIES)
    assert len({c.name for c in first}) == len(first)
    missing = [n for n in ALWAYS if n not in {c.name for c in first} and f"mqtt:{n}" not in {c.name for c in first}]
    assert not missing


def test_hostile_subset_gives_clear_errors_only(tmp_path):
    if shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"):
        cases = [c for c in corpus_subset() if c.family != "mqtt"]
    else:
        cases = corpus_subset()
    fixtures = runner.Fixtures.make(tmp_path / "fixtures")
    results = runner.run_cases(cases, fixtures, jobs=max(2, os.cpu_count() or 2))
    assert len(results) == len(cases)

    def listed(rs: list[runner.Result]) -> str:
        return "\n".join(f"  {r.name}: {r.outcome} {r.detail}" for r in rs)

    tracebacks = [r for r in results if r.outcome == "traceback"]
    hangs = [r for r in results if r.outcome == "hang"]
    wrong = [r for r in results if r.wrong_names]
    lost = [r for r in results if r.rows_lost]
    bombs = [r for r in results if r.outcome == "killed" or r.bomb and r.memory_mib > runner.BOMB_LIMIT_MIB]
    assert not tracebacks, f"{len(tracebacks)} tracebacks:\n{listed(tracebacks)}"
    assert not hangs, f"{len(hangs)} hangs:\n{listed(hangs)}"
    assert not wrong, f"{len(wrong)} cases named someone they must not:\n{listed(wrong)}"
    assert not lost, f"{len(lost)} cases lost committed rows:\n{listed(lost)}"
    assert not bombs, "bombs over 500 MiB:\n" + "\n".join(f"  {r.name}: {r.memory_mib:.0f} MiB" for r in bombs)
