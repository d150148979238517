#!/usr/bin/env python3
"""Summarise the raw results of benches/e2e.sh as markdown (stdlib only).

Input (--results): one line per redis-benchmark CSV row, tab-separated:

    scenario <TAB> target <TAB> round <TAB> <the CSV row as redis-benchmark printed it>

where the CSV row is redis-benchmark 7.0's
    "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"

--scenarios: one line per scenario, tab-separated: id, clients, pipeline, value size, requests.
--meta: one line per fact about the run, tab-separated: key, value.
--cpu (optional): one line per run, tab-separated: scenario, target, round, CPU ticks used
by the proxy (0 for redis itself), CPU ticks used by redis-server, requests, ticks per second.

Output: markdown on stdout (and in --out when given): the machine, then a throughput
table (median rps over the rounds, with the spread) with the portcullis/haproxy and
portcullis/redis-tls ratios, then a latency table (median over the rounds of each
round's p50 and p99), then (with --cpu) CPU microseconds per request in the proxy and
in redis-server (median over the rounds), and the redis-server CPU per request behind
each proxy relative to Redis doing TLS itself.
"""

import argparse
import csv
import statistics
import sys
from collections import defaultdict

# Column order of the tables (set from --targets); the plaintext row is only a reference.
TARGETS = ["redis", "redis-tls", "haproxy", "portcullis"]
TARGET_TITLES = {
    "redis": "redis (plain)",
    "redis-tls": "redis TLS",
    "haproxy": "HAProxy",
    "portcullis": "portcullis",
    "portcullis-base": "portcullis (baseline)",
    "portcullis-pooled": "portcullis pooled",
}
# The columns of ratios: (numerator, denominator), when both ran.
RATIOS = [
    ("portcullis", "haproxy"),
    ("portcullis", "redis-tls"),
    ("portcullis", "portcullis-base"),
    ("portcullis-pooled", "portcullis"),
    ("portcullis-pooled", "redis-tls"),
]
# Targets whose redis-server CPU per request is compared with Redis doing TLS itself.
BEHIND = ["haproxy", "portcullis", "portcullis-pooled"]


def title(target):
    return TARGET_TITLES.get(target, target)


def ratios():
    return [(a, b) for a, b in RATIOS if a in TARGETS and b in TARGETS]
TESTS = ["SET", "GET"]


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def read_results(path):
    """{(scenario, test, target): [ {rps, p50, p99}, ... one per round ]}"""
    samples = defaultdict(list)
    for fields in read_tsv(path):
        scenario, target, _round, row = fields[0], fields[1], fields[2], "\t".join(fields[3:])
        cells = next(csv.reader([row]))
        if len(cells) < 7 or cells[0] == "test":
            continue  # header or something that is not a result row
        try:
            rps, p50, p99 = float(cells[1]), float(cells[4]), float(cells[6])
        except ValueError:
            continue
        samples[(scenario, cells[0].upper(), target)].append({"rps": rps, "p50": p50, "p99": p99})
    return samples


def read_cpu(path):
    """{(scenario, target): [(proxy_us_per_req, redis_us_per_req), ... one per round]}"""
    per_run = defaultdict(list)
    for fields in read_tsv(path):
        try:
            proxy, redis, requests, hz = (float(x) for x in fields[3:7])
        except ValueError:
            continue
        if requests > 0 and hz > 0:
            scale = 1e6 / hz / requests
            per_run[(fields[0], fields[1])].append((proxy * scale, redis * scale))
    return per_run


def render_cpu(scenarios, cpu):
    out = ["### CPU per request (µs; proxy / redis-server)", ""]
    out.append(
        "User + system CPU time of each process during the run (from /proc, 10 ms ticks), "
        "divided by the requests; median of the rounds. The client's own CPU is not counted."
    )
    out.append("")
    head = ["scenario"] + [title(t) for t in TARGETS]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---|" + "|".join(["--:"] * len(TARGETS)) + "|")
    for sc in scenarios:
        row = [scenario_title(sc)]
        for t in TARGETS:
            runs = cpu.get((sc["id"], t), [])
            if not runs:
                row.append("–")
                continue
            proxy = statistics.median(r[0] for r in runs)
            redis = statistics.median(r[1] for r in runs)
            row.append(f"{redis:.2f}" if t in ("redis", "redis-tls") else f"{proxy:.2f} / {redis:.2f}")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    behind = [t for t in BEHIND if t in TARGETS]
    if "redis-tls" not in TARGETS or not behind:
        return out
    out.append("### redis-server CPU per request behind a proxy, relative to Redis doing TLS itself")
    out.append("")
    out.append(
        "The redis-server's CPU per request when a proxy terminates TLS, divided by its CPU "
        "per request when it serves TLS itself (lower: more of a single-threaded Redis left for work)."
    )
    out.append("")
    out.append("| scenario | " + " | ".join(title(t) for t in behind) + " |")
    out.append("|---|" + "|".join(["--:"] * len(behind)) + "|")
    for sc in scenarios:
        tls = cpu.get((sc["id"], "redis-tls"), [])
        row = [scenario_title(sc)]
        for t in behind:
            runs = cpu.get((sc["id"], t), [])
            if not runs or not tls:
                row.append("–")
                continue
            own = statistics.median(r[1] for r in tls)
            row.append(f"{statistics.median(r[1] for r in runs) / own:.2f}×" if own else "–")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    return out


def median_of(rounds, key):
    return statistics.median(r[key] for r in rounds) if rounds else None


def fmt_rps(rounds):
    if not rounds:
        return "–"
    med = median_of(rounds, "rps")
    text = f"{med:,.0f}"
    if len(rounds) > 1 and med > 0:
        spread = (max(r["rps"] for r in rounds) - min(r["rps"] for r in rounds)) / 2 / med
        text += f" ±{spread * 100:.0f}%"
    return text


def fmt_ratio(num, den):
    if not num or not den:
        return "–"
    a, b = median_of(num, "rps"), median_of(den, "rps")
    return f"{a / b:.2f}×" if b else "–"


def fmt_latency(rounds):
    if not rounds:
        return "–"
    return f"{median_of(rounds, 'p50'):.3f} / {median_of(rounds, 'p99'):.3f}"


def scenario_title(sc):
    return f"-c {sc['clients']} -P {sc['pipeline']} -d {sc['size']}"


def render(meta, scenarios, samples, rounds, cpu=None):
    out = []
    out.append("## End-to-end: portcullis vs HAProxy vs Redis TLS")
    out.append("")
    for key, value in meta:
        out.append(f"- {key}: {value}")
    out.append("")
    out.append(
        f"Median of {rounds} interleaved round(s); ± is half the min–max range of the rounds. "
        "Ratios compare median rps."
    )
    out.append("")

    # Throughput.
    head = ["scenario", "test", "n"] + [f"{title(t)} rps" for t in TARGETS]
    head += [f"{title(a)} / {title(b)}" for a, b in ratios()]
    out.append("### Throughput (requests/s)")
    out.append("")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---"] * 2 + ["--:"] * (len(head) - 2)) + "|")
    for sc in scenarios:
        for test in TESTS:
            by_target = {t: samples.get((sc["id"], test, t), []) for t in TARGETS}
            row = [scenario_title(sc), test, f"{sc['requests']:,}"]
            row += [fmt_rps(by_target[t]) for t in TARGETS]
            row += [fmt_ratio(by_target[a], by_target[b]) for a, b in ratios()]
            out.append("| " + " | ".join(row) + " |")
    out.append("")

    # Latency.
    head = ["scenario", "test"] + [title(t) for t in TARGETS]
    out.append("### Latency p50 / p99 (ms, as measured by redis-benchmark)")
    out.append("")
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---"] * 2 + ["--:"] * (len(head) - 2)) + "|")
    for sc in scenarios:
        for test in TESTS:
            row = [scenario_title(sc), test]
            row += [fmt_latency(samples.get((sc["id"], test, t), [])) for t in TARGETS]
            out.append("| " + " | ".join(row) + " |")
    out.append("")
    if cpu:
        out.extend(render_cpu(scenarios, cpu))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--cpu", help="CPU time per run (benches/e2e.sh's cpu.tsv)")
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--out", help="also write the markdown here")
    ap.add_argument("--targets", nargs="+", help="the targets, in column order")
    args = ap.parse_args()
    if args.targets:
        TARGETS[:] = args.targets

    scenarios = [
        {"id": f[0], "clients": f[1], "pipeline": f[2], "size": f[3], "requests": int(f[4])}
        for f in read_tsv(args.scenarios)
    ]
    meta = [(f[0], "\t".join(f[1:])) for f in read_tsv(args.meta)]
    samples = read_results(args.results)
    if not samples:
        sys.exit("e2e_report: no benchmark results to summarise")

    cpu = read_cpu(args.cpu) if args.cpu else None
    text = render(meta, scenarios, samples, args.rounds, cpu)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
