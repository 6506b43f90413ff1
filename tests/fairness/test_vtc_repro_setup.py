"""The VTC reproductions' own pieces: the linear fit of the artifact's S-LoRA cost profile (the
ablation cost), how Table 2's headline is judged, each figure's claim, and (slow) the issue-12
acceptance: full-mode vtc-table2 gives an FCFS/VTC Max Diff ratio within 1.6-2.6, reported as
reproduced."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmsched.experiments.reproduce import comparisons_frame, repro_status
from llmsched.experiments.reproductions import vtc
from llmsched.experiments.reproductions._vtc_suites import reference_dir

needs_reference = pytest.mark.skipif(not (reference_dir() / "cost_profile.json").exists(),
                                     reason="VTC reference data absent")


def _profile(a: float, b: float, c: float, d: float, points) -> dict:
    """A cost profile in the artifact's format generated from t = a + b·P + c·D + d·ctx:
    one prefill iteration of B·L tokens (context B·L), then n decode iterations of B requests
    whose caches hold L + k tokens, k = 0..n-1; times per request (divided by B)."""
    out: dict = {}
    for L, n, B in points:
        prefill = a + (b + d) * B * L
        decode = n * a + c * B * n + d * B * (n * L + n * (n - 1) / 2)
        out.setdefault(str(L), {})[str(n)] = [B, prefill / B, decode / B]
    return out


POINTS = [(8, 4, 2), (64, 64, 30), (256, 1, 38), (256, 256, 19), (512, 128, 15), (32, 1, 300)]


def test_profile_generator_by_hand():
    # L=8, n=4, B=2 with a=0.02, b=2e-4, c=1e-4, d=1e-6:
    # prefill per request = (0.02 + 2.01e-4·16) / 2 = 0.023216 / 2 = 0.011608 s
    # decode per request = (4·0.02 + 1e-4·8 + 1e-6·2·(32 + 6)) / 2 = 0.080876 / 2 = 0.040438 s
    p = _profile(0.02, 2e-4, 1e-4, 1e-6, [(8, 4, 2)])
    assert p["8"]["4"] == [2, pytest.approx(0.011608), pytest.approx(0.040438)]


def test_fit_recovers_the_costs_that_generated_the_profile():
    truth = (0.02, 2e-4, 1e-4, 1e-6)
    got = vtc.fit_linear_profile(_profile(*truth, POINTS))
    assert got == pytest.approx(truth, rel=1e-5)


def test_fit_follows_the_data():
    # negative control: the same profile with every decode twice as slow must not fit the same
    p = _profile(0.02, 2e-4, 1e-4, 1e-6, POINTS)
    slow = {L: {n: [B, pf, 2 * dec] for n, (B, pf, dec) in outs.items()} for L, outs in p.items()}
    base, fit = vtc.fit_linear_profile(p), vtc.fit_linear_profile(slow)

    def decode_step(coef, B=19, ctx=383.5):  # one decode iteration of B requests
        a, _, c, d = coef
        return a + c * B + d * B * ctx

    assert decode_step(fit) / decode_step(base) == pytest.approx(2.0, rel=0.2)


@needs_reference
def test_bundled_profile_fit_predicts_a_measured_decode_step():
    # cost_profile.json, input 256 / output 256: batch 19, 0.50112 s of decode per request, so one
    # decode step of 19 requests = 19 × 0.50112 / 256 = 37.19 ms at a mean cache of 256 + 127.5
    with open(reference_dir() / "cost_profile.json") as f:
        B, _, dec = json.loads(f.readline())["256"]["256"]
    assert (B, round(B * dec / 256 * 1e3, 2)) == (19, 37.19)
    a, _, c, d = (float(x) for x in vtc.slora_linear_cost().removeprefix("linear:").split(","))
    step = a + c * 19 + d * 19 * (256 + 127.5)
    assert step == pytest.approx(0.03719, rel=0.05)


def _table2(fcfs_ours: float, vtc_ours: float, fcfs_art: float = 759.97, vtc_art: float = 368.40):
    rows = []
    for label, (md, *_rest, tp) in vtc.PAPER_TABLE2.items():
        rows.append({"scheduler": label, "source": "paper", "max_diff": md, "throughput_tok_s": tp})
        art = {"FCFS": fcfs_art, "VTC": vtc_art}.get(label, md)
        rows.append({"scheduler": label, "source": "artifact", "max_diff": art, "throughput_tok_s": tp})
        ours = {"FCFS": fcfs_ours, "VTC": vtc_ours}.get(label, md)
        rows.append({"scheduler": label, "source": "ours", "max_diff": ours, "throughput_tok_s": 1.1 * tp})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("fcfs", "vtc_", "status"), [
    (700.0, 350.0, "reproduced"),        # 2.00 / 2.0629 = 0.97: within 0.25
    (520.0, 400.0, "direction only"),    # 1.30 / 2.0629 = 0.63: misses, but FCFS > VTC
    (350.0, 350.0, "not reproduced"),    # 1.00: FCFS no worse than VTC
])
def test_table2_headline_status(fcfs, vtc_, status):
    comps = vtc.table2_comparisons(_table2(fcfs, vtc_))
    heads = [c for c in comps if c.headline]
    assert [c.metric for c in heads] == ["FCFS Max Diff / VTC Max Diff"]
    assert heads[0].paper_value == pytest.approx(759.97 / 368.40, abs=1e-4)
    assert heads[0].relation == "ratio" and heads[0].tolerance == 0.25
    assert repro_status(comparisons_frame(comps)) == status


def test_table2_quick_headline_uses_the_artifact_over_the_same_window():
    # quick mode: the real runs cut at 300 s give 478.6 / 351.4 = 1.362 (notes §1); ours 1.36 agrees
    comps = vtc.table2_comparisons(_table2(370.5, 271.8, 478.6, 351.4), quick=True)
    head = next(c for c in comps if c.headline)
    assert head.paper_value == pytest.approx(478.6 / 351.4, abs=1e-4)
    assert repro_status(comparisons_frame(comps)) == "reproduced"
    assert repro_status(comparisons_frame(vtc.table2_comparisons(_table2(370.5, 271.8, 478.6, 351.4)))) \
        == "direction only"  # the same numbers judged against the paper's 600 s value


def _fig_rows(fig: str, suite: str, policies, **cols):
    return [{"figure": fig, "suite": suite, "policy": p, "source": s, "throughput_tok_s": 900.0,
             "max_diff": 100.0, **{k: v[(p, s)] for k, v in cols.items()}}
            for p in policies for s in ("ours", "artifact")]


def _fig_frame(fcfs_demand_ours: float):
    demand = {("vtc", "ours"): 1.0, ("fcfs", "ours"): fcfs_demand_ours, ("vtc", "artifact"): 1.0,
              ("fcfs", "artifact"): 0.7}
    rows = _fig_rows("Fig 4", "proportional", ("vtc", "fcfs"), demand_met_c1=demand, demand_met_c2=demand)
    acc = {("vtc", "ours"): 100.0, ("fcfs", "ours"): 3000.0, ("vtc", "artifact"): 100.0, ("fcfs", "artifact"): 3000.0}
    rows += _fig_rows("Fig 3", "overload", ("vtc", "fcfs"), acc_service_diff_end=acc)
    return comparisons_frame(vtc.figure_comparisons(pd.DataFrame(rows)))


def test_figure_claims_headline_counts_the_claims_that_hold():
    frame = _fig_frame(fcfs_demand_ours=0.8)  # Fig 4: VTC serves 1 / 0.8 = 1.25x FCFS's share
    head = frame[frame.headline]
    assert list(head.metric) == ["figures' qualitative claims that hold in ours"]
    assert (float(head.paper_value.iloc[0]), float(head.ours.iloc[0])) == (2, 2)
    assert repro_status(frame) == "reproduced"


def test_figure_claims_headline_fails_when_the_policies_tie():
    frame = _fig_frame(fcfs_demand_ours=1.0)  # FCFS as fair as VTC: Fig 4's claim fails
    rows = frame.set_index("metric")
    fig4 = rows.loc["Fig 4 share of demand served, VTC / FCFS, worse of clients 1 and 2"]
    assert float(fig4.ours) == 1.0 and not fig4.agrees and "1.43" in fig4.note  # artifact: 1 / 0.7
    fig3 = rows.loc["Fig 3 accumulated service difference at the end, FCFS / VTC"]
    assert float(fig3.ours) == 30.0 and fig3.agrees
    head = frame[frame.headline].iloc[0]
    assert float(head.ours) == 1 and head.note.startswith("fails: Fig 4 (ours 900 vs real 900 tok/s)")
    assert repro_status(frame) == "not reproduced"


@pytest.mark.slow
@needs_reference
def test_table2_full_mode_acceptance(tmp_path):
    """Issue 12: full-mode vtc-table2 gives FCFS/VTC Max Diff within 1.6-2.6 and says so."""
    from llmsched.experiments.registry import all_reproductions
    from llmsched.experiments.reproduce import run_reproductions

    (rec,) = run_reproductions([all_reproductions()["vtc-table2"]], tmp_path, quick=False, seed=0,
                               progress=False)
    assert rec.status == "ok", rec.error
    frame = pd.read_csv(tmp_path / "vtc-table2" / "comparisons.csv")
    head = frame[frame.headline.astype(bool)].iloc[0]
    assert 1.6 <= float(head.ours) <= 2.6
    assert repro_status(frame) == "reproduced"
