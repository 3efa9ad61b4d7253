"""The hostile-input corpus (issue 10): every bad input edge should refuse cleanly, and how it did.

    .venv/bin/python benchmarks/hostile.py [--families images,pairs,...] [--limit N] [--jobs J] [--json out.json]

Generates the corpus (tests/hostile/generate.py, seeded), runs each case as
an `edge` subprocess with a timeout and peak-RSS measurement (the MQTT
family against one running door and a real Mosquitto) and prints, per
family: cases, clear errors (exit 1/2 with an `edge:` line or a per-file
error), unclear errors (exit 1/2 with no message), accepted (exit 0),
tracebacks (a traceback, a signal or another exit status), hangs (timeout),
max memory MiB (any case; includes models and JIT), bombs (resource-bomb
cases), their max MiB and how many went over 500 MiB, wrong names (a stranger or damaged rows
named), rows lost (committed rows gone after damage that spared them).
Then every failing case with its reason. Exit status 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from benchmarks.machine import environment, format_table, header  # noqa: E402
from hostile import generate, runner  # noqa: E402

COLUMNS = [
    ("cases", "cases"), ("clear errors", "clear_errors"), ("unclear", "unclear_errors"), ("accepted", "accepted"),
    ("tracebacks", "tracebacks"), ("hangs", "hangs"), ("killed >3 GiB", "killed"), ("max MiB", "max_memory_mib"),
    ("bombs", "bombs"), ("bomb max MiB", "max_bomb_mib"), ("bombs >500 MiB", "bombs_over_500_mib"),
    ("wrong names", "wrong_names"), ("rows lost", "rows_lost"), ("failed", "failed"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(generate.FAMILIES), help="comma-separated: " + ",".join(generate.FAMILIES))
    parser.add_argument("--limit", type=int, help="at most N cases per family (spread over its generators)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="cases run at once (default: cores)")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write environment, table and every case's result here")
    parser.add_argument("--quiet", action="store_true", help="no per-case progress on stderr")
    args = parser.parse_args()
    families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    unknown = set(families) - set(generate.FAMILIES)
    if unknown:
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")

    env = environment()
    cases = generate.all_cases(args.seed, families)
    if args.limit:
        cases = generate.subset(cases, {f: args.limit for f in families})
    print(header(env, f"hostile-input corpus: {len(cases)} cases, seed {args.seed}, {args.jobs} at once"), flush=True)

    def progress(done: int, total: int, result: runner.Result) -> None:
        if not args.quiet:
            mark = "FAIL " + ",".join(result.reasons()) if result.failed else result.outcome
            print(f"[{done}/{total}] {result.name}: {mark} ({result.seconds:.1f} s, {result.memory_mib:.0f} MiB)",
                  file=sys.stderr, flush=True)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edge-hostile-") as tmp:
        fixtures = runner.Fixtures.make(Path(tmp))
        print("peak RSS on good input (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in fixtures.baselines.items()), flush=True)
        results = runner.run_cases(cases, fixtures, jobs=args.jobs, progress=progress)
    elapsed = time.monotonic() - started
    table = runner.summarize(results)
    print()
    print(format_table(["family", *(c[0] for c in COLUMNS)],
                       [[family, *(str(row[key]) for _, key in COLUMNS)] for family, row in table.items()]))
    print(f"\n{len(results)} cases in {elapsed:.0f} s; a failure is a traceback, a hang, a wrong name, "
          f"lost rows or a peak over {runner.BOMB_LIMIT_MIB} MiB.")
    failed = [r for r in results if r.failed]
    if failed:
        print(f"\nfailing cases ({len(failed)}):")
        for r in failed:
            print(f"  {r.family:8} {r.name}: {', '.join(r.reasons())}: {r.detail}")
    unclear = [r for r in results if r.outcome == "unclear"]
    if unclear:
        print(f"\nunclear errors ({len(unclear)}; exit 1/2 without an `edge:` message):")
        for r in unclear:
            print(f"  {r.family:8} {r.name}: exit {r.exit_status} {r.detail}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": env, "seed": args.seed, "seconds": round(elapsed, 1),
                                         "baseline_peak_mib": fixtures.baselines,
                                         "table": table, "cases": runner.as_dicts(results)}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
