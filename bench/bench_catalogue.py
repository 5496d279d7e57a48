"""Bad-input catalogue: cases run in one long-lived runner process vs one process per case, side by side.

`python bench/bench_catalogue.py [--cases N]` builds the catalogue's inputs without the model, takes the first N cases
that need no model, and runs them twice with the test's Runner (tests/test_bad_input_catalogue.py): a fresh runner
process for every case (the catalogue before), then all of them through one runner (the catalogue now). Both must
give the same outcome per case. Writes bench/results/bench_catalogue.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, import_plugin, save

sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    """Time both ways on the same cases and inputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import_plugin()
    import test_bad_input_catalogue as catalogue
    from catalogue_data import build_catalogue_data

    with tempfile.TemporaryDirectory() as tmp:
        data = build_catalogue_data(os.path.join(tmp, "data"), with_model=False)
        cases = [c for c in catalogue.CASES if "$model" not in str(c.params)][: args.cases]
        timings, outcomes = {}, {}
        for way in ("process_per_case", "one_runner"):
            root = Path(tmp) / way
            root.mkdir()
            runner = catalogue.Runner(root)
            start = time.perf_counter()
            results = []
            for case in cases:
                results.append(catalogue._run(case, data, root, runner).result["status"])
                if way == "process_per_case":
                    runner.close()  # the next case starts a fresh process, as each case did before
            runner.close()
            timings[way] = time.perf_counter() - start
            outcomes[way] = results
    assert outcomes["process_per_case"] == outcomes["one_runner"], outcomes
    ratio = timings["one_runner"] / timings["process_per_case"]
    print(f"{len(cases)} cases: one process per case {timings['process_per_case']:.1f} s, one runner "
          f"{timings['one_runner']:.1f} s (ratio {ratio:.2f})")  # fmt: skip
    path = save(
        "bench_catalogue",
        {
            "cases": len(cases),
            "seconds": {k: round(v, 2) for k, v in timings.items()},
            "one_runner_over_process_per_case": round(ratio, 3),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "cores": os.cpu_count(),
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
