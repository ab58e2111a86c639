"""Turn a benchmark run (k6 CSV samples + JSON summary + process stats) into Markdown and PNG charts.

    python bench/report.py run --raw RAW_DIR --out REPORT_DIR --scenario NAME [--k6-exit N] [--audit-exit N]
    python bench/report.py capacity --runs REPORT_DIR... --out REPORT_DIR

`run` expects in RAW_DIR what scripts/bench.sh leaves there: summary.json (k6/lib/report.js),
samples.csv.gz (`k6 run --out csv=` with K6_CSV_TIME_FORMAT=unix_milli), procstats.csv
(bench/procstats.py) and audit.txt. It writes report.md, summary.json, rps.png, latency.png,
status.png, process.png (and old-vs-new.png for the event simulation) into REPORT_DIR.
`capacity` reads the summary.json of several `run` reports (one per VU level) and writes one table and
one chart. Charts are drawn at a low dpi so each PNG stays well under 200 KB.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 72
MAX_PNG_BYTES = 150_000  # reports are committed: keep every chart small
BUCKET_SECONDS = 5  # latency percentiles per 5 s window: steadier than per second

# The old service's Black Friday run (500 VUs) and our targets (a third of its p95).
OLD_EVENT = {
    "requests": 56_148,
    "success": 99.4,
    "server_errors": 224,
    "timeouts": 101,
    "p95": {"product": 1156, "coupon_issue": 1190, "checkout": 2933, "payment": 2770},
}
EVENT_TARGETS = {"product": 385, "coupon_issue": 400, "checkout": 980, "payment": 920}
EVENT_MIN_REQUESTS = 112_296
# The old service's 100-VU figures after its fixes = our targets at 100 VUs.
OLD_100 = {"checkout": 304, "flow": 408, "coupon_issue": 35, "popular": 7}


@dataclass
class Samples:
    """What the k6 CSV holds, reduced to what the charts need."""

    start: float = 0.0
    durations: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    vus: list[tuple[float, float]] = field(default_factory=list)


def read_samples(path: Path) -> Samples:
    samples = Samples()
    first = None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            metric = row["metric_name"]
            if metric not in ("http_req_duration", "http_reqs", "vus"):
                continue
            stamp = float(row["timestamp"])
            stamp = stamp / 1000 if stamp > 1e11 else stamp
            first = stamp if first is None else min(first, stamp)
            name = row.get("name") or "other"
            if metric == "http_req_duration":
                samples.durations[name].append((stamp, float(row["metric_value"])))
            elif metric == "http_reqs":
                status = row.get("status") or "?"
                if status == "0" and row.get("error_code"):
                    status = f"0/{row['error_code']}"  # k6 error codes: 1050 = timeout, 1000/1100s = network
                samples.statuses[name][status] += 1
            else:
                samples.vus.append((stamp, float(row["metric_value"])))
    samples.start = first or 0.0
    return samples


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def read_procstats(path: Path) -> dict[str, list[tuple[float, float, float]]]:
    """role -> [(t, cpu %, rss MB)]; role 'host' holds (t, load1, used MB)."""
    series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    if not path.exists():
        return series
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            series[row["role"]].append((float(row["t"]), float(row["cpu"]), float(row["rss_mb"])))
    return series


# --- charts ----------------------------------------------------------------------------------------


def save(fig, out: Path) -> None:
    """Save a chart; if it is still large, store it with a 256-colour palette (charts lose nothing)."""
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    if out.stat().st_size > MAX_PNG_BYTES:
        from PIL import Image  # matplotlib's own dependency

        with Image.open(out) as image:
            image.convert("RGB").quantize(colors=256).save(out, optimize=True)


def chart_rps(samples: Samples, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    total: dict[int, int] = defaultdict(int)
    for name, points in sorted(samples.durations.items()):
        per_second: dict[int, int] = defaultdict(int)
        for stamp, _ in points:
            per_second[int(stamp - samples.start)] += 1
            total[int(stamp - samples.start)] += 1
        xs = sorted(per_second)
        ax.plot(xs, [per_second[x] for x in xs], label=name, linewidth=0.9)
    xs = sorted(total)
    ax.plot(xs, [total[x] for x in xs], label="total", color="black", linewidth=1.4)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("requests/s")
    if samples.vus:
        twin = ax.twinx()
        twin.plot([t - samples.start for t, _ in samples.vus], [v for _, v in samples.vus], "k--", linewidth=0.8)
        twin.set_ylabel("VUs (dashed)")
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    ax.set_title("requests per second by endpoint")
    fig.tight_layout()
    save(fig, out)


def chart_latency(samples: Samples, out: Path) -> None:
    names = sorted(samples.durations)
    cols = 3
    rows = max(1, (len(names) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False, sharex=True)
    for index, name in enumerate(names):
        ax = axes[index // cols][index % cols]
        buckets: dict[int, list[float]] = defaultdict(list)
        for stamp, value in samples.durations[name]:
            buckets[int((stamp - samples.start) // BUCKET_SECONDS) * BUCKET_SECONDS].append(value)
        xs = sorted(buckets)
        for q, style in ((50, "-"), (95, "-"), (99, ":")):
            ax.plot(xs, [percentile(buckets[x], q) for x in xs], style, label=f"p{q}", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
        if index == 0:
            ax.legend(fontsize=7)
    for index in range(len(names), rows * cols):
        axes[index // cols][index % cols].axis("off")
    fig.suptitle(f"latency (ms, log scale), p50/p95/p99 per {BUCKET_SECONDS} s window", fontsize=10)
    fig.tight_layout()
    save(fig, out)


def chart_status(samples: Samples, out: Path) -> None:
    names = sorted(samples.statuses)
    codes = sorted({code for counts in samples.statuses.values() for code in counts})
    fig, ax = plt.subplots(figsize=(10, 4))
    bottom = [0] * len(names)
    colors = {"200": "#4c9a2a", "201": "#7cc150", "202": "#a5d86e", "409": "#f0a030", "400": "#f5c542"}
    for code in codes:
        heights = [samples.statuses[name].get(code, 0) for name in names]
        color = colors.get(code, "#c0392b" if code.startswith(("5", "0")) else None)
        ax.bar(names, heights, bottom=bottom, label=code, color=color)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("responses")
    ax.set_title("status codes by endpoint (0 = timeout / transport error)")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.tight_layout()
    save(fig, out)


def chart_process(series: dict[str, list[tuple[float, float, float]]], start: float, out: Path) -> None:
    fig, (cpu_ax, mem_ax, load_ax) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for role in sorted(r for r in series if r != "host"):
        xs = [t - start for t, _, _ in series[role]]
        cpu_ax.plot(xs, [c for _, c, _ in series[role]], label=role, linewidth=0.9)
        mem_ax.plot(xs, [m for _, _, m in series[role]], label=role, linewidth=0.9)
    cpu_ax.set_ylabel("CPU % (100 = one core)")
    cpu_ax.legend(fontsize=7, ncol=4)
    mem_ax.set_ylabel("RSS MB")
    host = series.get("host", [])
    load_ax.plot([t - start for t, _, _ in host], [c for _, c, _ in host], color="black", linewidth=1)
    load_ax.axhline(os.cpu_count() or 2, color="red", linestyle=":", linewidth=1)
    load_ax.set_ylabel("load average (1 min)")
    load_ax.set_xlabel("seconds since start")
    fig.suptitle("processes during the run (sampled every second from /proc)", fontsize=10)
    fig.tight_layout()
    save(fig, out)


def chart_old_vs_new(summary: dict, out: Path) -> None:
    names = list(OLD_EVENT["p95"])
    ours = [summary["endpoints"].get(name, {}).get("p95", 0) for name in names]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = range(len(names))
    ax.bar([x - 0.27 for x in xs], [OLD_EVENT["p95"][n] for n in names], 0.27, label="old service", color="#999")
    ax.bar(list(xs), [EVENT_TARGETS[n] for n in names], 0.27, label="target (1/3 of old)", color="#f0c080")
    ax.bar([x + 0.27 for x in xs], ours, 0.27, label="this run", color="#3a7bd5")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("p95 ms")
    ax.set_title(f"Black Friday p95 at {summary.get('vus', '?')} VUs: old service vs this run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, out)


# --- markdown --------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def process_table(series: dict[str, list[tuple[float, float, float]]]) -> list[str]:
    lines = ["| process | CPU % mean | CPU % max | RSS MB max |", "|---|---:|---:|---:|"]
    for role in sorted(r for r in series if r != "host"):
        cpu = [c for _, c, _ in series[role]]
        lines.append(
            f"| {role} | {statistics.fmean(cpu):.0f} | {max(cpu):.0f} | {max(m for _, _, m in series[role]):.0f} |"
        )
    host = series.get("host", [])
    if host:
        loads = [c for _, c, _ in host]
        lines.append(f"| *host load avg (1 min)* | {statistics.fmean(loads):.1f} | {max(loads):.1f} | - |")
    return lines


def host_summary(series: dict[str, list[tuple[float, float, float]]]) -> dict:
    """Load average and mean CPU per process role: what the capacity table quotes."""
    loads = [c for _, c, _ in series.get("host", [])]
    return {
        "cores": os.cpu_count(),
        "loadAvgMean": statistics.fmean(loads) if loads else None,
        "loadAvgMax": max(loads) if loads else None,
        "cpuMean": {
            role: round(statistics.fmean(c for _, c, _ in rows), 1) for role, rows in series.items() if role != "host"
        },
    }


def verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return ""
    return "met" if value <= target else "**missed**"


def event_lines(summary: dict) -> list[str]:
    """The old service's Black Friday figures beside ours."""
    ep = summary["endpoints"]
    lines = [
        "## Beside the old service (Black Friday, 500 VUs)",
        "",
        f"| metric | old service | target | this run ({summary.get('vus')} VUs) | |",
        "|---|---:|---:|---:|---|",
        f"| requests | {OLD_EVENT['requests']:,} | ≥ {EVENT_MIN_REQUESTS:,} | {summary['requests']:,} | "
        f"{'met' if summary['requests'] >= EVENT_MIN_REQUESTS else '**missed**'} |",
        f"| success | {OLD_EVENT['success']} % | 100 % | {summary['successRate'] * 100:.3f} % | "
        f"{'met' if summary['failed'] == 0 else '**missed**'} |",
        f"| 5xx | {OLD_EVENT['server_errors']} | 0 | {summary['serverErrors']} | |",
        f"| timeouts | {OLD_EVENT['timeouts']} | 0 | {summary['timeouts']} | |",
    ]
    for name, old in OLD_EVENT["p95"].items():
        ours = ep.get(name, {}).get("p95")
        target = EVENT_TARGETS[name]
        lines.append(f"| p95 {name} (ms) | {old:,} | ≤ {target} | {ms(ours)} | {verdict(ours, target)} |")
    lines += ["", "![old vs new](old-vs-new.png)", ""]
    return lines


def sla100_lines(summary: dict) -> list[str]:
    ep = summary["endpoints"]
    lines = [
        "## Beside the old service's 100-VU figures (its final table)",
        "",
        "| metric | old service (after its fixes) | this run | |",
        "|---|---:|---:|---|",
    ]
    for name, old in OLD_100.items():
        ours = ep.get(name, {}).get("p95")
        lines.append(f"| p95 {name} (ms) | {old} | {ms(ours)} | {verdict(ours, old)} |")
    return lines + [""]


def write_run_report(args: argparse.Namespace) -> None:
    raw, out = Path(args.raw), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = json.loads((raw / "summary.json").read_text())
    samples = read_samples(raw / "samples.csv.gz")
    series = read_procstats(raw / "procstats.csv")
    summary["host"] = host_summary(series)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    audit = (raw / "audit.txt").read_text().strip() if (raw / "audit.txt").exists() else "(not run)"
    chart_rps(samples, out / "rps.png")
    chart_latency(samples, out / "latency.png")
    chart_status(samples, out / "status.png")
    if series:
        chart_process(series, samples.start, out / "process.png")
    is_event = args.scenario == "event-simulation"
    if is_event:
        chart_old_vs_new(summary, out / "old-vs-new.png")

    title_suffix = f" at {summary['vus']} VUs" if summary.get("vus") else ""
    started = datetime.fromtimestamp(samples.start).strftime("%Y-%m-%d %H:%M:%S") if samples.start else "?"
    lines = [
        f"# {args.scenario}{title_suffix}",
        "",
        f"Run {started}, {summary['seconds']:.0f} s, on {os.cpu_count()} cores with k6 on the same machine "
        f"(and other engineers' processes: see the load average). Web: {args.web}. "
        f"k6 exit {args.k6_exit} (99 = a threshold failed), invariant audit exit {args.audit_exit}.",
        "",
        "| requests | requests/s | success | 5xx | timeouts | shed (503 OVERLOADED) | paid orders | coupons issued "
        "| top-ups |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['requests']:,} | {summary['requestsPerSecond']:.0f} | {summary['successRate'] * 100:.3f} % | "
        f"{summary['serverErrors']} | {summary['timeouts']} | {summary.get('shed', 0):,} | {summary['paidOrders']:,} | "
        f"{summary['couponsIssued']} | {summary['chargeRetries']} |",
        "",
        "## Latency per endpoint (ms, whole run)",
        "",
        "| endpoint | requests | p50 | p90 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["endpoints"].items():
        lines.append(
            f"| {name} | {s['count']:,} | {ms(s['med'])} | {ms(s['p90'])} | {ms(s['p95'])} | {ms(s['p99'])} | "
            f"{ms(s['max'])} |"
        )
    lines += ["", "`flow` = checkout + payment as one client sees it.", ""]
    if is_event:
        lines += event_lines(summary)
    if summary.get("vus") == 100 or args.scenario in ("load-test", "payment-burst"):
        lines += sla100_lines(summary)
    codes = sorted({c for counts in samples.statuses.values() for c in counts})
    lines += [
        "## Status codes",
        "",
        "| endpoint | " + " | ".join(codes) + " |",
        "|---|" + "---:|" * len(codes),
    ]
    for name in sorted(samples.statuses):
        lines.append(f"| {name} | " + " | ".join(str(samples.statuses[name].get(c, 0)) for c in codes) + " |")
    lines += ["", "![status codes](status.png)", "", "## Over time", "", "![requests/s](rps.png)", ""]
    lines += ["![latency](latency.png)", "", "## Processes", ""]
    lines += process_table(series) + ["", "![processes](process.png)", ""]
    lines += lockwait_lines(raw / "lockwaits.json", summary)
    lines += ["## Invariant audit (after the run)", "", "```", audit, "```", ""]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text("\n".join(lines))


def lockwait_lines(path: Path, summary: dict) -> list[str]:
    """InnoDB's row-lock counters over the run and the rows most waited on (bench/lockwaits.py)."""
    if not path.exists():
        return []
    waits = json.loads(path.read_text())
    summary["rowLocks"] = {k: waits[k] for k in ("row_lock_waits", "row_lock_time_ms")}
    lines = [
        "## Row locks",
        "",
        f"`Innodb_row_lock_waits` +{waits['row_lock_waits']:,}, `Innodb_row_lock_time` "
        f"+{waits['row_lock_time_ms'] / 1000:,.1f} s over {waits['seconds']:.0f} s; some transaction was waiting "
        f"in {waits['samples_with_waits']} of {waits['samples']} samples "
        f"(every {waits.get('interval_seconds', 0.3)} s).",
        "",
    ]
    if waits["top_rows"]:
        lines += ["| row (table, index, key) | waiters seen | share |", "|---|---:|---:|"]
        lines += [f"| `{r['row']}` | {r['waiter_samples']} | {r['share'] * 100:.0f} % |" for r in waits["top_rows"]]
        lines.append("")
    if waits.get("top_waiting_statements"):
        lines += ["| waiting statement (literals stripped) | waiters seen | share |", "|---|---:|---:|"]
        lines += [
            f"| `{r['statement']}` | {r['waiter_samples']} | {r['share'] * 100:.0f} % |"
            for r in waits["top_waiting_statements"]
        ]
        lines.append("")
    return lines


# --- capacity --------------------------------------------------------------------------------------

CAPACITY_ENDPOINTS = ("product", "coupon_issue", "checkout", "payment", "popular", "points")


def write_capacity_report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    levels = []
    for run in args.runs:
        summary = json.loads((Path(run) / "summary.json").read_text())
        load = (summary.get("host") or {}).get("loadAvgMax")
        levels.append((summary, Path(run), float("nan") if load is None else load))
    levels.sort(key=lambda level: level[0]["vus"])
    header = "| VUs | requests | req/s | success | 5xx | timeouts | shed | " + " | ".join(
        f"p95 {n}" for n in CAPACITY_ENDPOINTS
    )
    lines = [
        "# Capacity: the event simulation at several VU levels",
        "",
        f"{os.cpu_count()} cores, k6 on the same machine; each level is one run of k6/event-simulation.js with the "
        "stages scaled to the level (reseeded before each). p95 in ms.",
        "",
        header + " | load avg max | report |",
        "|" + "---:|" * (7 + len(CAPACITY_ENDPOINTS)) + "---:|---|",
    ]
    for summary, run, load in levels:
        ep = summary["endpoints"]
        cells = " | ".join(ms(ep.get(n, {}).get("p95")) for n in CAPACITY_ENDPOINTS)
        lines.append(
            f"| {summary['vus']} | {summary['requests']:,} | {summary['requestsPerSecond']:.0f} | "
            f"{summary['successRate'] * 100:.2f} % | {summary['serverErrors']} | {summary['timeouts']} | "
            f"{summary.get('shed', 0):,} | {cells} | "
            f"{load:.1f} | [{run.name}](../{run.name}/report.md) |"
        )
    lines += ["", "![capacity](capacity.png)", ""]
    (out / "capacity.md").write_text("\n".join(lines))

    vus = [s["vus"] for s, _, _ in levels]
    fig, (rate_ax, p95_ax) = plt.subplots(1, 2, figsize=(11, 4))
    rate_ax.plot(vus, [s["requestsPerSecond"] for s, _, _ in levels], "o-", label="requests/s")
    rate_ax.set_xlabel("VUs")
    rate_ax.set_ylabel("requests/s")
    rate_ax.set_ylim(bottom=0)
    twin = rate_ax.twinx()
    twin.plot(vus, [s["successRate"] * 100 for s, _, _ in levels], "s--", color="green", label="success %")
    twin.set_ylabel("success % (dashed)")
    twin.set_ylim(top=100.5)
    rate_ax.set_title("throughput and success")
    for name in CAPACITY_ENDPOINTS:
        p95 = [s["endpoints"].get(name, {}).get("p95", float("nan")) for s, _, _ in levels]
        p95_ax.plot(vus, p95, "o-", label=name)
    p95_ax.set_xlabel("VUs")
    p95_ax.set_ylabel("p95 ms (log)")
    p95_ax.set_yscale("log")
    p95_ax.legend(fontsize=7)
    p95_ax.set_title("p95 per endpoint")
    fig.tight_layout()
    save(fig, out / "capacity.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--raw", required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--scenario", required=True)
    run.add_argument("--k6-exit", default="?")
    run.add_argument("--audit-exit", default="?")
    run.add_argument("--web", default="?")
    capacity = sub.add_parser("capacity")
    capacity.add_argument("--runs", nargs="+", required=True)
    capacity.add_argument("--out", required=True)
    args = parser.parse_args()
    (write_run_report if args.command == "run" else write_capacity_report)(args)


if __name__ == "__main__":
    main()
