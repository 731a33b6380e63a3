"""pciplan from Python against the command line, on the same fleet.

    python python/bench/bench_batch.py [--guests 20000] [--kind mixed] [--repeat 3]

Runs take turns (CLI, then each Python way, then the CLI again, ...), so that a slower
stretch of the machine hits them all alike. Measures, each in a fresh process (so every run starts with empty caches, as a new
`pciplan batch` does):

- `pciplan batch FLEET --quiet > /dev/null` (the release command line), guests/s;
- `pciplan.batch` over the fleet's lines (str) and over the fleet as dicts, consuming every
  result dict, guests/s (the dicts are parsed before the clock starts);
- the same with `as_json=True`, consuming every result line (str);
- one `pciplan.plan` call on a 32-device guest (`fleet sized 32`), from a dict to the plan
  dict, median over many calls (the planner's memo of solutions is warm after the first,
  as in a placement service that sees similar guests).

The fleet comes from the repository's generator (`target/release/examples/fleet`), built
with `cargo build --release --bin pciplan --example fleet` when missing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def release(rel: str) -> Path:
    path = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "release" / rel
    if not path.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "pciplan", "--example", "fleet"],
                       cwd=REPO, check=True)
    return path


def as_dict(line: str):
    """A line as a dict (the fleet mixes in malformed lines, which stay text)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    return obj if isinstance(obj, dict) else line


def one_python_run(fleet: str, mode: str) -> float:
    """Runs in a child process: seconds to plan the fleet with pciplan.batch."""
    import pciplan

    with open(fleet) as f:
        lines = f.read().splitlines()
    source, _, out = mode.partition("-")
    items = [as_dict(line) for line in lines] if source == "dicts" else lines
    start = time.perf_counter()
    n = 0
    for _ in pciplan.batch(items, as_json=out == "json"):
        n += 1
    elapsed = time.perf_counter() - start
    assert n == len(lines)
    return elapsed


def python_run(fleet: Path, mode: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(fleet)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def cli_run(cli: Path, fleet: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(cli), "batch", str(fleet), "--quiet"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def plan_32(fleet_bin: Path, calls: int) -> float:
    import pciplan

    request = json.loads(subprocess.run([str(fleet_bin), "sized", "32"], capture_output=True,
                                        text=True, check=True).stdout)
    assert len(request["devices"]) == 32
    pciplan.plan(request)  # the first call solves; the rest are what a service sees
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        pciplan.plan(request)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(one_python_run(sys.argv[3], sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description="pciplan.batch vs pciplan batch")
    ap.add_argument("--guests", type=int, default=20000)
    ap.add_argument("--kind", default="mixed", help="fleet kind: mixed or templated")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()
    cli, fleet_bin = release("pciplan"), release("examples/fleet")
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Path(tmp) / "fleet.jsonl"
        with open(fleet, "wb") as f:
            subprocess.run([str(fleet_bin), args.kind, str(args.guests), str(args.seed)],
                           stdout=f, check=True)
        runs = [
            ("pciplan batch (CLI)", lambda: cli_run(cli, fleet)),
            ("pciplan.batch, str lines", lambda: python_run(fleet, "lines")),
            ("pciplan.batch, dicts", lambda: python_run(fleet, "dicts")),
            ("  as_json=True, str lines", lambda: python_run(fleet, "lines-json")),
            ("  as_json=True, dicts", lambda: python_run(fleet, "dicts-json")),
        ]
        times = {name: [] for name, _ in runs}
        for _ in range(args.repeat):
            for name, run in runs:
                times[name].append(run())
        best = {name: min(t) for name, t in times.items()}
        rows = [(name, args.guests / min(t), args.guests / statistics.median(t))
                for name, t in times.items()]
    print(f"{args.guests} {args.kind} guests, best of {args.repeat} (median), 1 process each:")
    base = best["pciplan batch (CLI)"]
    for name, fastest, median in rows:
        ratio = base / best[name]
        print(f"  {name:<28} {fastest:>10,.0f} guests/s ({median:,.0f})  {ratio:6.1%} of the CLI")
    us = plan_32(fleet_bin, args.calls) * 1e6
    print(f"pciplan.plan, 32-device guest, dict in, dict out: {us:.1f} µs (median of {args.calls})")


if __name__ == "__main__":
    main()
