"""Assembles the result lines of bench/*/run logs (bench/README.md) into one Markdown report:
machine and versions, a summary of every target, then one table per benchmark with medians,
repetition counts, ratios and the commands behind them. Standard library only."""
import statistics
import sys
from pathlib import Path


def parse(line):
    kind, *fields = line.rstrip("\n").split("\t")
    return kind, dict(f.split("=", 1) for f in fields if "=" in f)


def fmt(v):
    if v is None:
        return ""
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def check(ratio, target):
    if ratio is None or not target:
        return ""
    op, bound = target.split()
    ok = ratio >= float(bound) if op == ">=" else ratio <= float(bound)
    return "yes" if ok else "**no**"


def main(log_dir):
    info, tables, order = [], {}, []
    for log in sorted(Path(log_dir).glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("BENCH"):
                continue
            kind, f = parse(line)
            if kind == "BENCHINFO":
                info.append((f["key"], f["value"]))
                continue
            t = tables.setdefault(f.get("table", "?"), {"rows": {}, "order": [], "notes": [], "cmds": {}})
            if f.get("table") not in order:
                order.append(f.get("table"))
            if kind == "BENCHNOTE":
                t["notes"].append(f["text"])
            elif kind == "BENCHCMD":
                t["cmds"].setdefault((f["row"], f["side"]), f["cmd"])
            elif kind == "BENCH":
                row = t["rows"].setdefault(f["row"], {"metric": f["metric"], "better": f["better"], "target": ""})
                if f["row"] not in t["order"]:
                    t["order"].append(f["row"])
                side = row.setdefault(f["side"], {"name": f["name"], "values": []})
                try:
                    side["values"].append(float(f["value"]))
                except ValueError:
                    pass
                if f.get("target"):
                    row["target"] = f["target"]

    out = ["# Benchmark results", "", "Written by `bench/run` (see bench/README.md); every number below was measured in that run.", ""]
    out += ["## Machine and versions", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info]
    summary, body = [], []
    for name in order:
        t = tables[name]
        body += ["", f"## {name}", ""]
        if t["rows"]:
            body += ["| case | dptrain (median) | n | peer / reference (median) | n | ratio ours/peer | target | met |",
                     "|---|---|---|---|---|---|---|---|"]
        for r in t["order"]:
            row = t["rows"][r]
            ours, peer = row.get("ours"), row.get("peer")
            med = lambda s: statistics.median(s["values"]) if s and s["values"] else None
            mo, mp = med(ours), med(peer)
            ratio = mo / mp if mo is not None and mp else None
            show_ratio = f"{ratio:.3f}" if ratio is not None else ""
            met = check(ratio, row["target"])
            unit = row["metric"]
            body.append(
                f"| {r} | {fmt(mo)} {unit if mo is not None else ''} | {len(ours['values']) if ours else 0} | "
                f"{(peer['name'] + ': ' + fmt(mp) + ' ' + unit) if mp is not None else ''} | "
                f"{len(peer['values']) if peer else 0} | {show_ratio} | "
                f"{('ratio ' + row['target']) if row['target'] else ''} | {met} |")
            if row["target"]:
                summary.append(f"| {name} | {r} | {show_ratio or 'n/a'} | {row['target']} | {met or 'n/a'} |")
        if t["notes"]:
            body.append("")
            body += [f"- {n}" for n in t["notes"]]
        if t["cmds"]:
            body += ["", "Commands:", ""]
            body += [f"- {r} ({side}): `{c}`" for (r, side), c in t["cmds"].items()]
    out += ["", "## Targets", "", "| benchmark | case | ratio ours/peer | target | met |", "|---|---|---|---|---|"]
    out += summary or ["| | (no targets) | | | |"]
    out += body
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
