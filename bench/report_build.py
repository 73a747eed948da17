"""Time `medsyn report` on fabricated run folders (tests/report_fakes.py).

    python bench/report_build.py [--runs 3] [--epochs 3] [--repeats 3]

Each generation run gets --epochs evaluated epochs (100 logged steps per epoch); one SR run is
added. Prints the median wall time of build_report over --repeats builds. The numbers in the
fabricated files are test data; only the timing is measured here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from report_fakes import make_generation_run, make_sr_run  # noqa: E402

from medsyn.reports import build_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="generation runs")
    parser.add_argument("--epochs", type=int, default=3, help="evaluated epochs per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        for i in range(args.runs):
            fids = {2 * (e + 1): 150.0 - 5 * e + i for e in range(args.epochs)}
            make_generation_run(root, f"acgan-{i}", fids)
        make_sr_run(root)
        times = []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            # each repeat rebuilds the same folder, as `medsyn report --overwrite` does
            result = build_report(None, Path(tmp) / "reports", runs_root=root, overwrite=True)
            times.append(time.perf_counter() - start)
            if repeat == 0:
                print(f"{result.n_runs} runs, {result.n_evaluations} evaluations, "
                      f"{len(list((Path(tmp) / 'reports' / 'assets').rglob('*.png')))} images")
        print(f"build_report: median {statistics.median(times):.2f} s over {args.repeats} "
              f"builds (min {min(times):.2f} s)")


if __name__ == "__main__":
    main()
