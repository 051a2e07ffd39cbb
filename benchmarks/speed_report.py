"""Collect the per-problem speed results into ``speed.json`` and a markdown table ``speed.md``.

Reads ``benchmarks/results/speed/*.json`` (``--quick``: ``speed_quick/``) written by
``speed_gated.py``, ``speed_relu.py``, ``speed_adam.py``, ``speed_iteration.py`` and
``speed_memory.py``, and writes ``benchmarks/results/speed.json`` (every record, minus
long histories) and ``speed.md`` (``speed_quick.*`` for ``--quick``). Missing results are
shown as "not run".

    python benchmarks/speed_report.py [--quick]
"""

from __future__ import annotations

import argparse
import json

import _bench as B

GOALS = {"gated": 20.0, "relu": 10.0, "iteration": 1.5, "memory": 4.0}


def _f(x, fmt="{:.3g}"):
    return "–" if x is None else fmt.format(x)


def _s(x):
    return "–" if x is None else f"{x:.2f}"


def _strip(rec):
    if isinstance(rec, dict):
        return {k: _strip(v) for k, v in rec.items() if k not in ("history", "curve", "raw")}
    if isinstance(rec, list):
        return [_strip(v) for v in rec]
    return rec


def collect(quick: bool) -> dict:
    out = {}
    d = B.results_dir(quick)
    for path in sorted(d.glob("*.json")) if d.exists() else []:
        rec = json.loads(path.read_text())
        out.setdefault(rec["benchmark"], {})[rec["problem"]] = rec
    return out


def gated_table(recs: dict) -> list[str]:
    lines = [
        "| problem | n × d, c, P | convexnn: time to certified 1e-4 (s) | pyscnn R-FISTA time (s) | pyscnn (J−J*)/J* | pyscnn own-program rel. gap | **ratio pyscnn / convexnn** (goal ≥ 20) | adelie time to J*(1+1e-3) (s) | adelie / convexnn |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in recs.items():
        if "error" in r:
            lines.append(f"| {name} | error: see JSON | | | | | | | |")
            continue
        sh, cx, ps, ad = r["shape"], r["convexnn"], r.get("pyscnn", {}), r.get("adelie", {})
        cert = "" if cx["certified"] else f" (NOT certified: gap {cx['relative_gap']:.1e})"
        cert += f" ({cx['solver']})" if cx.get("solver") else ""
        cap = f" (capped at {ps['capped_max_iter']} it)" if ps.get("capped_max_iter") else ""
        ratio = r.get("ratio_pyscnn_over_convexnn")
        ok = "" if ratio is None else (" ✓" if ratio >= GOALS["gated"] and cx["certified"] else " ✗")
        adt = ad.get("seconds_to_target")
        adn = ad.get("skipped") and "n/a" or ad.get("error") and "error" or (
            ad.get("timed_out") and f"> {ad['timed_out']} (no result: timed out)") or (
            _s(adt) + (f" (tol {ad.get('tol_at_target'):g})" if adt else " (not reached)"))
        lines.append(
            f"| {name} | {sh['n_samples']} × {sh['n_features']}, {sh['n_outputs']}, {sh['n_patterns']} | "
            f"{_s(cx['seconds'])}{cert} | {_s(ps.get('seconds'))}{cap} | {_f(ps.get('rel_subopt'), '{:.1e}')} | "
            f"{_f(ps.get('own_program_relative_gap'), '{:.1e}')} | {_f(ratio, '{:.2f}')}{ok} | {adn} | "
            f"{_f(r.get('ratio_adelie_over_convexnn'), '{:.2f}')} |"
        )
    return lines


def relu_table(recs: dict) -> list[str]:
    lines = [
        "| problem | n × d, c, P | convexnn time (s) | convexnn rel. gap (goal ≤ 1e-3) | pyscnn AL time (s) | pyscnn J (infeasible) | pyscnn cone violation | pyscnn J after projection | convexnn certified J | **ratio pyscnn / convexnn** (goal ≥ 10) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in recs.items():
        if "error" in r:
            lines.append(f"| {name} | error: see JSON | | | | | | | | |")
            continue
        sh, cx, ps = r["shape"], r["convexnn"], r.get("pyscnn", {})
        ratio = r.get("ratio_pyscnn_over_convexnn")
        ok = "" if ratio is None else (" ✓" if ratio >= GOALS["relu"] and cx["certified"] else " ✗")
        lines.append(
            f"| {name} | {sh['n_samples']} × {sh['n_features']}, {sh['n_outputs']}, {sh['n_patterns']} | "
            f"{_s(cx['seconds'])} ({cx.get('solver', 'fista')}) | "
            f"{cx['relative_gap']:.1e}{'' if cx['certified'] else ' (not certified)'} | "
            f"{_s(ps.get('seconds'))} ({ps.get('max_primal_iters', '–')} it) | {_f(ps.get('J_convexnn_objective'), '{:.5g}')} | "
            f"{_f(ps.get('cone_violation'), '{:.1e}')} | {_f(ps.get('J_after_projection'), '{:.5g}')} | "
            f"{cx['primal']:.5g} | {_f(ratio, '{:.2f}')}{ok} |"
        )
    return lines


def adam_table(recs: dict) -> list[str]:
    lines = [
        "| problem, activation | width | convexnn J* (rel. gap) | convexnn time to J*(1+1e-3) (s) | best Adam J / J* (lr, batch) | Adam time to its best J (s) | **time ratio Adam / convexnn** | fastest Adam run to J*(1+1e-3) (s) | Adam below convexnn? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in recs.items():
        if "error" in r:
            lines.append(f"| {name} | error: see JSON | | | | | | | |")
            continue
        cx, best = r["convexnn"], r.get("adam_best") or {}
        ratio = r.get("ratio_adam_time_to_best_over_convexnn_time_to_target")
        batch = "full" if best.get("batch") is None else best.get("batch")
        # below the certified lower bound = a network better than the certificate allows
        # (possible for ReLU: the bound covers the sampled patterns only)
        bJ = best.get("best_J")
        below = "–" if bJ is None else (
            "below the certified (sampled-pattern) lower bound ✗" if bJ < cx["dual"] else
            "below J*, within the certified gap" if bJ < cx["J_star"] else "no ✓")
        lines.append(
            f"| {name.replace('__', ', ')} | {r['shape']['width']} | {cx['J_star']:.6g} ({cx['relative_gap']:.1e}) | "
            f"{_s(cx['seconds_to_target'])} | {_f(best.get('best_J') and best['best_J'] / cx['J_star'], '{:.6f}')} "
            f"({best.get('lr', '–')}, {batch}) | {_s(best.get('seconds_to_best'))} | {_f(ratio, '{:.2f}')} | "
            f"{_s(r.get('adam_fastest_to_target'))} | {below} |"
        )
    if any(r.get("variant") == "relu_search" for r in recs.values()):
        lines += ["", "`relu_search`: the ReLU fit with `pattern_search=2` (two rounds of local descent "
                  "and certified re-solves over the descended units' patterns, `convexnn.descent`); Adam at "
                  "that fit's width; its time to J*(1+1e-3) is read off the rounds (the whole fit up to the "
                  "round that reached it)."]
    polished = {name: r["convexnn_with_adam_patterns"] for name, r in recs.items() if "convexnn_with_adam_patterns" in r}
    if polished:
        lines += ["", "ReLU, with the best Adam network's own patterns added to the sampled ones (its first "
                  "layer as gates): that network is then feasible for the convex program, so the certified "
                  "optimum is at most Adam's J.", "",
                  "| problem | patterns | convexnn J* (rel. gap) | J* / best Adam J | width | seconds |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {name.replace('__', ', ')} | {c['n_patterns']} | {c['J_star']:.6g} ({c['relative_gap']:.1e}) | "
                  f"{c['ratio_J_star_over_adam_best']:.5f} | {c['width']} | {c['seconds']:.1f} |"
                  for name, c in polished.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    recs = collect(args.quick)
    stem = "speed_quick" if args.quick else "speed"
    (B.RESULTS / f"{stem}.json").write_text(json.dumps(_strip(recs), indent=1))
    md = [
        f"# Speed benchmarks (issue 3){' — quick sizes' if args.quick else ''}",
        "",
        "Generated by `benchmarks/speed_report.py` from the per-problem files in "
        f"`benchmarks/results/{B.results_dir(args.quick).name}/` (written by `benchmarks/speed_*.py`; "
        "`make bench` runs all). Every ratio is measured side by side in one run on the same program "
        "(same standardised data, bias column appended for pyscnn, same gates, pyscnn's lam = convexnn's alpha / c "
        "for c outputs (pyscnn averages the squared loss over all n c entries) = adelie's lmda; see `benchmarks/_bench.py` for the objective mapping, which each run re-checks). "
        "Shared 2-core machine, one BLAS thread; absolute seconds mean little, ratios more.",
        "",
    ]
    env = next((r.get("environment") for g in recs.values() for r in g.values() if r.get("environment")), None)
    if env:
        md += [f"Environment: convexnn {env.get('convexnn')}, pyscnn {env.get('pyscnn')}, "
               f"numpy {env.get('numpy')}, Python {env.get('python')}, {env.get('cpu_count')} CPUs, "
               f"OPENBLAS_NUM_THREADS={env.get('OPENBLAS_NUM_THREADS')}. The records were run at different "
               "times and commits (each file keeps its own):", ""]
        md += [f"- {kind}/{name}: {r['environment'].get('date')}, git {r['environment'].get('git_commit')}"
               for kind, g in recs.items() for name, r in g.items() if r.get("environment")]
        md += [""]
    md += ["## Goal 1 — gated ReLU: certified 1e-4 vs pyscnn R-FISTA (default stop) and adelie", ""]
    md += gated_table(recs.get("gated", {})) if recs.get("gated") else ["not run"]
    md += ["", "`pyscnn (J−J*)/J*`: convexnn's objective at pyscnn's weights (intercept 0) above convexnn's "
           "certified J*. `own-program rel. gap`: the gap certifiable from pyscnn's point for its own "
           "intercept-free program. A capped pyscnn run makes the ratio a lower bound.", ""]
    md += ["## Goal 2 — ReLU: certified 1e-3 vs pyscnn augmented Lagrangian (1000 iterations)", ""]
    md += relu_table(recs.get("relu", {})) if recs.get("relu") else ["not run"]
    md += ["", "## Goal 3 — against PyTorch Adam (same width, same J, lr 1e-4 … 1e-1, full and mini-batch)", ""]
    md += adam_table(recs.get("adam", {})) if recs.get("adam") else ["not run"]
    md += ["", "## Goal 4 — one iteration vs the two dense matmuls it needs", ""]
    it = next(iter(recs.get("iteration", {}).values()), None)
    if it and "error" not in it:
        s, sh = it["seconds"], it["shape"]
        md += [f"n = {sh['n_samples']}, d = {sh['n_features']}, P = {sh['n_patterns']} (median of 7, ms):", "",
               "| matvec | rmatvec | Xa @ W | Xa.T @ T | FISTA iteration | **operator / matmuls** | **FISTA iteration / matmuls** (goal ≤ 1.5) |",
               "|---|---|---|---|---|---|---|",
               f"| {s['matvec']*1e3:.1f} | {s['rmatvec']*1e3:.1f} | {s['Xa@W']*1e3:.1f} | {s['Xa.T@T']*1e3:.1f} | "
               f"{s['fista_iteration']*1e3:.1f} | {it['ratio_operator_over_matmuls']:.2f} | "
               f"{it['ratio_fista_iteration_over_matmuls']:.2f} {'✓' if it['ratio_fista_iteration_over_matmuls'] <= 1.5 else '✗'} |"]
    else:
        md += ["not run" if it is None else "error: see JSON"]
    md += ["", "## Goal 5 — peak memory (child process, `ru_maxrss`)", ""]
    mem = next(iter(recs.get("memory", {}).values()), None)
    if mem and "error" not in mem:
        sh = mem["shape"]
        md += [f"n = {sh['n_samples']}, d = {sh['n_features']}, P = {sh['n_patterns']}; an n × P × (d+1) float64 "
               f"array would be {mem['nPd_float64_bytes'] / 1024**3:.0f} GiB.", "",
               "| run | peak RSS (GiB) | fits 4 GB? | seconds |", "|---|---|---|---|"]
        for mode, r in mem["runs"].items():
            if "error" in r:
                md.append(f"| {mode} | error (rc {r.get('returncode')}) | | |")
            else:
                md.append(f"| {mode} | {r['peak_GiB']:.2f} | {'yes ✓' if r['fits_4GB'] else 'NO ✗'} | {r['seconds']:.1f} |")
    else:
        md += ["not run" if mem is None else "error: see JSON"]
    stream = next(iter(recs.get("memory_stream", {}).values()), None)
    if stream and "error" not in stream:
        sh = stream["shape"]
        md += ["", f"Streaming from a memory-mapped `.npy` (`speed_memory.py`, n = {sh['n_samples']}, "
               f"d = {sh['n_features']}, P = {sh['n_patterns']}; X is {stream['X_bytes'] / 1024**3:.2f} GiB): "
               "anonymous memory excludes the map's page cache.", "",
               "| run | peak RSS (GiB) | anonymous peak (GiB) | fit's traced numpy peak (GiB) | seconds |",
               "|---|---|---|---|---|"]
        for mode, r in stream["runs"].items():
            if "error" in r:
                md.append(f"| {mode} | error (rc {r.get('returncode')}) | | | |")
            else:
                md.append(f"| {mode} | {r['peak_GiB']:.2f} | {r['anon_peak_GiB']:.2f} | "
                          f"{r['fit_traced_peak_GiB']:.2f} | {r['seconds']:.1f} |")
    md.append("")
    (B.RESULTS / f"{stem}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
