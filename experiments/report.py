"""Build `docs/reproductions.md` from a reproduction results directory, and nothing else.

Reads OUT/NAME/meta.json and comparisons.parquet (written by `llmsched.experiments.reproduce`), copies each
PNG figure next to the report (`<report dir>/figures/reproductions/NAME/`) so the Markdown renders in
the repository, and writes the page atomically. The page is regenerated, never edited by hand.

Beside each section's figures the report keeps `record.json`: the run's meta data and comparisons,
exactly what the section was built from. With `keep_previous=True` (`llmsched report --keep-previous`)
a reproduction that is not in RESULTS_DIR keeps its section, rebuilt from that record, so one
reproduction can be re-run without re-running the rest; its commit and date stay the earlier run's.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from llmsched.experiments.reproduce import NO_HEADLINE, repro_status
from llmsched.sim import atomic
from llmsched.sim.errors import InputError

DEFAULT_OUTPUT = Path("docs") / "reproductions.md"
FIGURES_SUBDIR = Path("figures") / "reproductions"
RECORD = "record.json"  # beside a section's figures: the meta data and comparisons it was built from


def _fmt(x: Any) -> str:
    """Numbers to 4 significant digits; text as is; missing as an em dash."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x).replace("|", "\\|")
    if math.isnan(v):  # a number written as text ("nan"), e.g. a comparison's `ours`
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == int(v) and abs(v) < 1e12:
        return str(int(v))
    return f"{v:.4g}"


def _agree_mark(a: Any) -> str:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return "n/a"
    return "yes" if bool(a) else "**no**"


def load_results(results_dir: str | Path) -> list[dict[str, Any]]:
    """meta.json of every reproduction under results_dir (sorted by name), with its comparisons."""
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(str(root), "RESULTS_DIR", "is not a directory",
                         "pass the --out directory of `llmsched reproduce`")
    entries = []
    for meta_path in sorted(root.glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as exc:
            raise InputError(str(meta_path), "", f"unreadable meta.json ({exc})", "re-run the reproduction") from None
        comp_path = meta_path.parent / "comparisons.parquet"
        meta["_comparisons"] = pd.read_parquet(comp_path) if comp_path.is_file() else None
        meta["_dir"] = meta_path.parent
        entries.append(meta)
    if not entries:
        raise InputError(str(root), "RESULTS_DIR", "holds no reproduction results (no */meta.json)",
                         "run `llmsched reproduce ... --out DIR` first")
    return entries


def _plain(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return _plain(x.item())
    return x


def write_record(meta: dict[str, Any], fig_dir: Path) -> None:
    """The section's source (meta data without the loader's keys, and the comparisons) as JSON."""
    comp = meta.get("_comparisons")
    record = {k: v for k, v in meta.items() if not k.startswith("_")}
    record["comparisons"] = ([] if comp is None else
                             [{k: _plain(v) for k, v in r.items()} for r in comp.to_dict("records")])
    fig_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(fig_dir / RECORD, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")


def load_records(report_dir: Path, skip: set[str]) -> list[dict[str, Any]]:
    """The stored records of the report's earlier sections, except those named in `skip`."""
    entries = []
    for path in sorted((report_dir / FIGURES_SUBDIR).glob(f"*/{RECORD}")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(str(path), "", f"unreadable record ({exc})", "re-run that reproduction") from None
        if record.get("name") in skip:
            continue
        rows = record.pop("comparisons", [])
        record["_comparisons"] = pd.DataFrame(rows) if rows else None
        record["_dir"] = path.parent
        record["_kept"] = True
        entries.append(record)
    return entries


def _status(meta: dict[str, Any]) -> str:
    """The reproduction's status: failed runs first, else judged from its headline comparisons."""
    if meta.get("status") != "ok":
        return "failed"
    return repro_status(meta.get("_comparisons"))


def _headline_rows(entries: list[dict[str, Any]]) -> list[str]:
    """The at-a-glance table: each headline claim, the paper's number, ours and the status."""
    lines = ["| paper | headline claim | paper | ours | status | why (where ours differs) |",
             "|---|---|---:|---:|---|---|"]
    for m in entries:
        comp = m.get("_comparisons")
        status = _status(m)
        if comp is None or "headline" not in comp or not comp["headline"].any():
            if status == "failed":
                lines.append(f"| {m.get('paper', '')} | [{m['name']}](#{m['name'].lower()}) | — | — | failed | "
                             f"{_fmt(m.get('error', ''))} |")
            continue
        for r in comp[comp["headline"].astype(bool)].to_dict("records"):
            agrees = r["agrees"]
            why = "" if agrees is True or agrees == True else _fmt(r["note"]) if r["note"] else ""  # noqa: E712
            unit = f" {r['unit']}" if r.get("unit") else ""
            lines.append(f"| {m.get('paper', '')} | [{_fmt(r['metric'])}](#{m['name'].lower()}) | "
                         f"{_fmt(r['paper_value'])}{unit} | {_fmt(r['ours'])}{unit} | {status} | {why} |")
    return lines


def _comparison_table(df: pd.DataFrame) -> list[str]:
    lines = ["| metric | paper | ours | unit | ours / paper | relation | agrees | note |",
             "|---|---:|---:|---|---:|---|---|---|"]
    for r in df.to_dict("records"):
        rel = r["relation"] + (f" (±{_fmt(r['tolerance'])})" if r.get("tolerance") not in (None,) and
                               not (isinstance(r.get("tolerance"), float) and math.isnan(r["tolerance"])) else "")
        metric = f"**{_fmt(r['metric'])}** (headline)" if r.get("headline") is True or r.get("headline") == True \
            else _fmt(r["metric"])  # noqa: E712
        lines.append(f"| {metric} | {_fmt(r['paper_value'])} | {_fmt(r['ours'])} | {r['unit'] or ''} | "
                     f"{_fmt(r['ratio'])} | {rel} | {_agree_mark(r['agrees'])} | {_fmt(r['note']) if r['note'] else ''} |")
    return lines


def _section(meta: dict[str, Any], report_dir: Path) -> list[str]:
    name = meta["name"]
    lines = [f"## {name}", "", f"**{meta.get('paper', '')}**, {meta.get('target', '')}. "
             f"Status: **{_status(meta)}**. Mode: {meta.get('mode', '?')}; seed {meta.get('seed', '?')}; "
             f"commit `{meta.get('commit') or 'unknown'}`; wall time {_fmt(meta.get('wall_s'))} s.", ""]
    if meta.get("description"):
        lines += [" ".join(meta["description"].split()), ""]
    lines += ["```bash", meta.get("command", ""), "```", ""]
    if meta.get("status") != "ok":
        lines += [f"**Failed:** `{meta.get('error', '')}` (traceback in `error.txt` of the results directory).", ""]
        return lines
    fig_dir = report_dir / FIGURES_SUBDIR / name
    pngs = [f for f in meta.get("figures", []) if f.lower().endswith(".png")]
    kept = bool(meta.get("_kept"))
    if not kept:
        if fig_dir.exists():
            shutil.rmtree(fig_dir)
        write_record(meta, fig_dir)
    for f in pngs:
        dst = fig_dir / Path(f).name
        if not kept:
            src = meta["_dir"] / f
            if not src.is_file():
                lines += [f"*(figure `{f}` missing from the results directory)*", ""]
                continue
            shutil.copy2(src, dst)
        elif not dst.is_file():
            lines += [f"*(figure `{f}` missing beside the kept record)*", ""]
            continue
        rel = Path(os.path.relpath(dst, report_dir)).as_posix()
        lines += [f"![{name}: {Path(f).stem}]({rel})", ""]
    comp = meta.get("_comparisons")
    if comp is not None and len(comp):
        lines += [*_comparison_table(comp), ""]
    else:
        lines += ["*(no published numbers compared)*", ""]
    if meta.get("notes"):
        lines += [meta["notes"].strip(), ""]
    return lines


def build_report(results_dir: str | Path, output: str | Path = DEFAULT_OUTPUT, keep_previous: bool = False) -> Path:
    """Write the Markdown report for every reproduction under results_dir (and, with
    `keep_previous`, the stored sections of those it does not hold); return its path."""
    entries = load_results(results_dir)
    output = Path(output)
    report_dir = output.parent
    if keep_previous:
        entries = sorted(entries + load_records(report_dir, {m["name"] for m in entries}), key=lambda m: m["name"])
    report_dir.mkdir(parents=True, exist_ok=True)
    modes = sorted({str(m.get("mode", "?")) for m in entries})
    statuses = [_status(m) for m in entries]
    counted = [s for s in statuses if s != NO_HEADLINE]
    lines = [
        "# Reproductions",
        "",
        "<!-- Generated by `llmsched report`; do not edit by hand: re-run the reproductions instead. -->",
        "",
        "Each section is one registered reproduction: the paper and the figure or table it reproduces, "
        "the command, seed and commit it ran with, our figure, and every published number next to ours. "
        "A reproduction's status is judged from its headline comparisons: **reproduced** (every headline "
        "number within its stated tolerance), **direction only** (ours points the paper's way but misses "
        "the magnitude), **not reproduced**; the row says why where ours differs. "
        "Regenerate with `llmsched reproduce --all --out results --report docs/reproductions.md` "
        "(full mode), or `llmsched report results -o docs/reproductions.md`.",
        "",
        f"Mode: {', '.join(modes)}. Headline claims: {sum(s == 'reproduced' for s in counted)} reproduced, "
        f"{sum(s == 'direction only' for s in counted)} direction only, "
        f"{sum(s in ('not reproduced', 'failed') for s in counted)} not reproduced or failed, "
        f"of {len(counted)} reproductions with a headline.",
        "",
        "## Headline claims",
        "",
        *_headline_rows(entries),
        "",
        "## All reproductions",
        "",
        "| reproduction | paper | target | mode | status | agree / compared | wall time (s) |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for m, status in zip(entries, statuses):
        comp = m.get("_comparisons")
        n = 0 if comp is None else len(comp)
        agree = 0 if comp is None else int((comp["agrees"] == True).sum())  # noqa: E712
        lines.append(f"| [{m['name']}](#{m['name'].lower()}) | {m.get('paper', '')} | {m.get('target', '')} | "
                     f"{m.get('mode', '')} | {status} | {agree} / {n} | {_fmt(m.get('wall_s'))} |")
    lines.append("")
    for m in entries:
        lines += _section(m, report_dir)
    atomic.write_text(output, "\n".join(lines).rstrip() + "\n")
    return output
