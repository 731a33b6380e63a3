"""A what-if sweep over a fleet on Dask distributed: every policy variant, every partition.

Each Dask task plans one partition of the fleet under one policy variant with
`pciplan.batch` (which uses every core of its worker) and returns one small row per guest;
the driver puts the partitions back in fleet order and sums them up per variant. The
result is the same as planning the whole fleet in one process (`sweep_local`), only spread
over as many machines as the cluster has.

    python dask_whatif.py fleet.jsonl                       # a LocalCluster of 2 workers
    python dask_whatif.py fleet.jsonl --scheduler tcp://scheduler:8786

A fleet to try: `cargo run --release --example fleet -- mixed 20000 > fleet.jsonl`.
"""

import argparse
import json
from typing import Any, Dict, Iterable, List, Optional, Tuple

# Policy variants: each one is laid over every guest's own policy.
VARIANTS: Dict[str, Dict[str, Any]] = {
    "as requested": {},
    "1 spare port": {"spare_ports": 1},
    "2 spare ports": {"spare_ports": 2},
    "everything hot-pluggable": {"default_hotplug": "on"},
    "off devices on ports too": {"hotplug_off": "auto"},
}

# One guest's outcome: name, planned or not, controllers added, the rule when infeasible.
Row = Tuple[Optional[str], bool, int, Optional[str]]


def with_policy(line: str, patch: Dict[str, Any]) -> Any:
    """The request on this line with `patch` laid over its policy; a line that is not a
    JSON object goes as it is (its result says what is wrong with it)."""
    try:
        request = json.loads(line)
    except ValueError:
        return line
    if not patch or not isinstance(request, dict):
        return line
    policy = request.get("policy", {})
    if not isinstance(policy, dict):
        return line
    return {**request, "policy": {**policy, **patch}}


def plan_partition(lines: List[str], patch: Dict[str, Any]) -> List[Row]:
    """Plans one partition (JSON Lines) under one variant: one row per guest, in order."""
    import pciplan  # imported on the worker

    requests = (with_policy(line, patch) for line in lines)
    rows = []
    for r in pciplan.batch(requests):
        if r["ok"]:
            rows.append((r["name"], True, r["cost"], None))
        else:
            rows.append((r["name"], False, 0, r["error"].get("rule")))
    return rows


def summarize(rows: Iterable[Row]) -> Dict[str, Any]:
    """Counts of one variant: guests, planned, controllers added, infeasible by rule."""
    s: Dict[str, Any] = {"guests": 0, "planned": 0, "controllers": 0, "failed": {}}
    for _, ok, cost, rule in rows:
        s["guests"] += 1
        if ok:
            s["planned"] += 1
            s["controllers"] += cost
        else:
            key = rule or "invalid"
            s["failed"][key] = s["failed"].get(key, 0) + 1
    return s


def partitions(lines: List[str], n: int) -> List[List[str]]:
    """`n` contiguous slices of the fleet (contiguous keeps the fleet's order)."""
    size = max(1, -(-len(lines) // max(1, n)))
    return [lines[i:i + size] for i in range(0, len(lines), size)]


def sweep_local(lines: List[str], variants=VARIANTS) -> Dict[str, List[Row]]:
    """The whole sweep in this process: the reference the distributed run must equal."""
    return {name: plan_partition(lines, patch) for name, patch in variants.items()}


def sweep_dask(client, lines: List[str], n_parts: int, variants=VARIANTS) -> Dict[str, List[Row]]:
    """The sweep on a Dask cluster: one task per (variant, partition)."""
    if __name__ != "__main__":
        # Imported as a module: the workers import it too, from the copy sent here.
        client.upload_file(__file__)
    parts = client.scatter(partitions(lines, n_parts))
    futures = {
        name: [client.submit(plan_partition, p, patch, pure=False) for p in parts]
        for name, patch in variants.items()
    }
    out = {}
    for name, fs in futures.items():
        rows: List[Row] = []
        for part in client.gather(fs):
            rows.extend(tuple(r) for r in part)
        out[name] = rows
    return out


def local_cluster(workers: int = 2):
    """A LocalCluster of worker processes (one thread each: pciplan.batch brings its own
    threads)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fleet", help="JSON Lines, one request per line")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster workers")
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args()
    from distributed import Client

    with open(args.fleet) as f:
        lines = [line for line in f if line.strip()]
    cluster = None if args.scheduler else local_cluster(args.workers)
    with Client(args.scheduler or cluster) as client:
        results = sweep_dask(client, lines, args.partitions)
    if cluster is not None:
        cluster.close()
    print(f"{'variant':<28} {'planned':>9} {'controllers':>12}  failed")
    for name, rows in results.items():
        s = summarize(rows)
        failed = ", ".join(f"{k} {v}" for k, v in sorted(s["failed"].items())) or "-"
        print(f"{name:<28} {s['planned']:>9} {s['controllers']:>12}  {failed}")



if __name__ == "__main__":
    main()
