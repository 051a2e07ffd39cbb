"""Tests of the ``convexnn`` command line (convexnn.cli.main and ``python -m convexnn``)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor
from convexnn.cli import main
from convexnn.io import load

N_PATTERNS = "20"
MAX_ITER = "500"  # the CLI's plumbing is under test, not the solver's convergence


# --------------------------------------------------------------------------- helpers


def _write_csv(path: Path, columns: list[str], rows) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def _num(value) -> str:
    return repr(float(value))


def _read_csv(path_or_text) -> tuple[list[str], list[list[str]]]:
    if isinstance(path_or_text, Path):
        path_or_text = path_or_text.read_text()
    rows = list(csv.reader(path_or_text.splitlines()))
    return rows[0], rows[1:]


def _data(n_samples: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 3)) * [1.0, 20.0, 0.5] + [0.0, 50.0, 2.0]
    z = (X - X.mean(0)) / X.std(0)
    score = z[:, 0] - z[:, 1] ** 2 + 0.5 * z[:, 2]
    return X, score


@pytest.fixture
def classification_csv(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    X, score = _data()
    y = np.where(score > np.median(score), "dog", "cat")
    rows = [[_num(a), _num(b), y_i, _num(c)] for (a, b, c), y_i in zip(X, y)]
    path = _write_csv(tmp_path / "pets.csv", ["x1", "x2", "label", "x3"], rows)
    return path, X, y


@pytest.fixture
def regression_csv(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    X, score = _data(seed=1)
    rows = [[_num(a), _num(b), _num(c), _num(t)] for (a, b, c), t in zip(X, score)]
    path = _write_csv(tmp_path / "house.csv", ["x1", "x2", "x3", "price"], rows)
    return path, X, score


def _fit(csv_path, *extra) -> int:
    return main(["fit", str(csv_path), "--n-patterns", N_PATTERNS, "--max-iter", MAX_ITER,
                 *map(str, extra)])


def _assert_user_error(capsys, argv, *fragments) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "convexnn: error: " in err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


# --------------------------------------------------------------------------- fit / predict


def test_fit_then_predict_classification(classification_csv, tmp_path, capsys):
    csv_path, X, y = classification_csv
    model_path = tmp_path / "pets_model.npz"
    assert _fit(csv_path, "--target", "label", "--output", model_path) == 0
    out = capsys.readouterr().out
    assert "task: classification (auto: target 'label' is not numeric)" in out
    assert "48 train / 12 test" in out
    for fragment in ("test accuracy", "neurons used", "objective J", "duality gap",
                     "certifies:", "fit time", "fitted on the train part", str(model_path)):
        assert fragment in out, fragment

    model = load(model_path)
    assert isinstance(model, Pipeline)
    assert type(model[-1]) is ConvexMLPClassifier
    assert model[-1].n_patterns == int(N_PATTERNS)
    assert sorted(model.classes_.tolist()) == ["cat", "dog"]
    assert model.n_features_in_ == 3

    preds_path = tmp_path / "preds.csv"
    assert main(["predict", str(model_path), str(csv_path), "--output", str(preds_path)]) == 0
    header, rows = _read_csv(preds_path)
    assert header == ["prediction"] + [f"proba_{c}" for c in model.classes_]
    assert len(rows) == len(y)
    # Features are taken by name: x1, x2, x3 (the CSV has the target between x2 and x3).
    assert [r[0] for r in rows] == model.predict(X).tolist()
    proba = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_array_equal(proba, model.predict_proba(X))


def test_predict_matches_columns_by_name_and_writes_stdout(classification_csv, tmp_path, capsys):
    csv_path, X, y = classification_csv
    model_path = tmp_path / "m.npz"
    assert _fit(csv_path, "--target", "label", "--output", model_path, "--seed", 3) == 0
    capsys.readouterr()
    # Same data, columns shuffled, target dropped, an extra column added.
    rows = [[_num(c), "zzz", _num(a), _num(b)] for a, b, c in X]
    other = _write_csv(tmp_path / "shuffled.csv", ["x3", "note", "x1", "x2"], rows)
    assert main(["predict", str(model_path), str(other)]) == 0
    header, rows = _read_csv(capsys.readouterr().out)
    assert header[0] == "prediction"
    assert [r[0] for r in rows] == load(model_path).predict(X).tolist()


def test_fit_regression_without_scaler_or_holdout(regression_csv, tmp_path, capsys):
    csv_path, X, target = regression_csv
    model_path = tmp_path / "house.npz"
    assert _fit(csv_path, "--target", "price", "--no-standardize", "--test-size", 0,
                "--activation", "gated_relu", "--alpha", 0.01, "--output", model_path) == 0
    out = capsys.readouterr().out
    assert "task: regression (auto: target 'price' is numeric with 60 distinct values" in out
    assert "train R^2" in out
    model = load(model_path)
    assert type(model) is ConvexMLPRegressor
    assert (model.activation, model.alpha) == ("gated_relu", 0.01)

    assert main(["predict", str(model_path), str(csv_path)]) == 0
    header, rows = _read_csv(capsys.readouterr().out)
    assert header == ["prediction"]
    np.testing.assert_array_equal([float(r[0]) for r in rows], model.predict(X))


def test_integer_target_is_classification_and_default_output(tmp_path, capsys):
    X, score = _data(seed=2)
    y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))  # 0, 1, 2
    rows = [[_num(a), _num(b), _num(c), str(t)] for (a, b, c), t in zip(X, y)]
    csv_path = _write_csv(tmp_path / "three.csv", ["a", "b", "c", "k"], rows)
    assert _fit(csv_path, "--target", "k") == 0
    out = capsys.readouterr().out
    assert "task: classification (auto: target 'k' has 3 distinct integer values" in out
    default = tmp_path / "three.convexnn.npz"
    assert default.is_file() and str(default) in out
    model = load(default)
    assert model.classes_.tolist() == [0, 1, 2]
    assert np.issubdtype(model.classes_.dtype, np.integer)


def test_forced_task_overrides_auto(tmp_path, capsys):
    X, score = _data(seed=3)
    y = np.digitize(score, np.quantile(score, [0.5]))
    rows = [[_num(a), _num(b), _num(c), str(t)] for (a, b, c), t in zip(X, y)]
    csv_path = _write_csv(tmp_path / "binary.csv", ["a", "b", "c", "y"], rows)
    model_path = tmp_path / "reg.npz"
    assert _fit(csv_path, "--target", "y", "--task", "regression", "-o", model_path) == 0
    assert "task: regression (as requested)" in capsys.readouterr().out
    assert type(load(model_path)[-1]) is ConvexMLPRegressor


# --------------------------------------------------------------------------- user errors


def test_missing_target_column(classification_csv, capsys):
    csv_path, _, _ = classification_csv
    _assert_user_error(capsys, ["fit", csv_path, "--target", "nope"],
                       "column 'nope' not found", "x1, x2, label, x3")


def test_missing_csv_file(tmp_path, capsys):
    _assert_user_error(capsys, ["fit", tmp_path / "absent.csv", "--target", "y"],
                       "no such file")


def test_non_numeric_feature_names_column_and_row(classification_csv, capsys):
    csv_path, _, _ = classification_csv
    lines = csv_path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[1] = "abc"  # column x2, data row 3, file line 4
    lines[3] = ",".join(cells)
    csv_path.write_text("\n".join(lines) + "\n")
    _assert_user_error(capsys, ["fit", csv_path, "--target", "label"],
                       "column 'x2' is not numeric", "row 3", "line 4", "'abc'")


def test_bad_task_choice(classification_csv, capsys):
    csv_path, _, _ = classification_csv
    err = _assert_user_error(capsys, ["fit", csv_path, "--target", "label", "--task", "cluster"],
                             "invalid choice")
    assert err.startswith("usage: convexnn fit")


def test_regression_on_text_target(classification_csv, capsys):
    csv_path, _, _ = classification_csv
    _assert_user_error(capsys, ["fit", csv_path, "--target", "label", "--task", "regression"],
                       "numeric target")


def test_ragged_csv(tmp_path, capsys):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,y\n1,2,0\n3,1\n")
    _assert_user_error(capsys, ["fit", path, "--target", "y"], "line 3 has 2 fields")


def test_bad_test_size(classification_csv, capsys):
    csv_path, _, _ = classification_csv
    _assert_user_error(capsys, ["fit", csv_path, "--target", "label", "--test-size", "1.5"],
                       "--test-size")


def test_predict_missing_feature_column(classification_csv, tmp_path, capsys):
    csv_path, X, _ = classification_csv
    model_path = tmp_path / "m.npz"
    assert _fit(csv_path, "--target", "label", "-o", model_path) == 0
    capsys.readouterr()
    other = _write_csv(tmp_path / "partial.csv", ["x1", "x3"], [[1.0, 2.0]])
    _assert_user_error(capsys, ["predict", model_path, other], "x2")


def test_predict_with_invalid_model_file(classification_csv, tmp_path, capsys):
    csv_path, _, _ = classification_csv
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"not a model")
    _assert_user_error(capsys, ["predict", fake, csv_path], "not a convexnn model file")
    _assert_user_error(capsys, ["predict", tmp_path / "none.npz", csv_path], "no such model")


# --------------------------------------------------------------------------- help, entry points


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["fit", "--help"],
                                  ["predict", "--help"], ["certify", "--help"],
                                  ["path", "--help"], ["export", "--help"]])
def test_help(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: convexnn" in out
    if argv == ["--help"]:
        for command in ("fit", "predict", "certify", "path", "export", "demo"):
            assert command in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: convexnn" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "convexnn", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "convexnn 0.1.0"
    done = subprocess.run([sys.executable, "-m", "convexnn", "fit", "missing.csv",
                           "--target", "y"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("convexnn: error: no such file")


@pytest.mark.slow
def test_demo_runs(capsys):
    argv = ["demo", "--n-patterns", N_PATTERNS, "--max-iter", "300", "--seed", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "breast cancer" in out
    assert "426 train / 143 test" in out
    for fragment in ("ConvexMLPClassifier", "MLPClassifier", "test accuracy", "neurons used",
                     "objective J", "duality gap", "converged", "certificate:", "certifies:",
                     "fit time"):
        assert fragment in out, fragment
    rows = {line.split("  ")[1].strip(): line for line in out.splitlines() if line.startswith("  ")
            and not line.startswith("    ")}
    convex_acc, mlp_acc = (float(v) for v in rows["test accuracy"].split()[2:])
    assert 0.0 <= convex_acc <= 1.0 and 0.9 <= mlp_acc <= 1.0
    assert rows["neurons used"].split()[-1] == "100"  # MLPClassifier's hidden width
    assert len(rows["fit time"].split()) == 6  # "fit time  0.12 s  0.34 s"


def test_fit_without_alpha_uses_the_estimators_default():
    from convexnn import ConvexMLPClassifier
    from convexnn.cli import build_parser

    args = build_parser().parse_args(["fit", "data.csv", "--target", "y"])
    assert args.alpha is None  # so _cmd_fit leaves the estimator's measured default
    assert ConvexMLPClassifier().alpha == 3e-3


# --------------------------------------------------------------------------- Parquet


def _to_parquet(csv_path: Path) -> Path:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = csv_path.with_suffix(".parquet")
    frame = pd.read_csv(csv_path)
    frame.to_parquet(out)
    return out


def test_fit_and_predict_parquet_equal_csv(classification_csv, tmp_path, capsys):
    csv_path, X, y = classification_csv
    parquet = _to_parquet(csv_path)
    assert _fit(csv_path, "--target", "label", "--output", tmp_path / "csv.npz") == 0
    assert _fit(parquet, "--target", "label", "--output", tmp_path / "pq.npz") == 0
    a, b = load(tmp_path / "csv.npz"), load(tmp_path / "pq.npz")
    np.testing.assert_array_equal(a[-1].coefs_[0], b[-1].coefs_[0])  # the same data exactly
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "pq.npz"), str(parquet)]) == 0
    header, rows = _read_csv(capsys.readouterr().out)
    assert header == ["prediction", "proba_cat", "proba_dog"]
    assert [r[0] for r in rows] == a.predict(X).tolist()


def test_parquet_without_pyarrow_names_the_extra(classification_csv, monkeypatch, capsys):
    csv_path, _, _ = classification_csv
    parquet = _to_parquet(csv_path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    _assert_user_error(capsys, ["fit", parquet, "--target", "label"],
                       "pandas and pyarrow", "pip install 'convexnn[parquet]'")


def test_unreadable_parquet(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    _assert_user_error(capsys, ["fit", bad, "--target", "y"], "not a readable Parquet file")


# --------------------------------------------------------------------------- certify


def _cvxpy_optimum(est, X, Y, w) -> float:
    """Optimal value of the estimator's program on (X, Y), by cvxpy/Clarabel."""
    pytest.importorskip("cvxpy")
    from convexnn.patterns import Patterns
    from convexnn.solvers import CvxpySolver

    program = est._program(X, Y, w, Patterns(est.gates_, complete=False))
    solution = CvxpySolver().solve(program, tol=1e-9)
    return program.objective(solution.coef, solution.intercept)


def test_certify_on_the_training_data_reproduces_the_fit(classification_csv, tmp_path, capsys):
    csv_path, X, y = classification_csv
    model_path = tmp_path / "m.npz"
    assert _fit(csv_path, "--target", "label", "--test-size", "0", "--activation", "gated_relu",
                "--output", model_path) == 0
    capsys.readouterr()
    assert main(["certify", str(model_path), str(csv_path), "--target", "label"]) == 0
    out = capsys.readouterr().out
    line = next(li for li in out.splitlines() if "certificate on this data:" in li)
    primal, dual = (float(line.split(name)[1].split(",")[0]) for name in ("primal ", "dual "))
    pipe = load(model_path)
    est = pipe[-1]
    saved = est.certificate_
    assert primal == pytest.approx(saved.primal, rel=1e-5)  # printed with 6 digits
    assert "certifies:" in out and "scope: the saved gates" in out
    # weak duality against the program's optimum computed independently
    Xs = pipe[0].transform(X)
    Y = (y == "dog").astype(float)[:, None]
    w = np.full(len(y), 1 / len(y))
    p_star = _cvxpy_optimum(est, Xs, Y, w)
    assert dual <= p_star * (1 + 1e-5) and p_star <= primal * (1 + 1e-5)


def test_certify_certificate_matches_an_independent_computation(regression_csv, tmp_path):
    from convexnn.cli import _certify_saved

    csv_path, X, target = regression_csv
    model_path = tmp_path / "r.npz"
    assert _fit(csv_path, "--target", "price", "--test-size", "0", "--output", model_path) == 0
    pipe = load(model_path)
    est = pipe[-1]
    # new data: half the rows, shifted
    Xn, tn = X[::2] + 0.1, target[::2]
    cert = _certify_saved(pipe, Xn, [repr(float(t)) for t in tn], "price")
    f = pipe.predict(Xn)
    W1, W2 = est.coefs_
    J = 0.5 * np.mean((f - tn) ** 2) + est.alpha / 2 * (
        np.sum(W1**2) + np.sum(est.intercepts_[0] ** 2) + np.sum(W2**2)
    )
    assert cert.primal == pytest.approx(J, rel=1e-12)
    assert cert.scope == "sampled" and cert.activation == "relu"
    p_star = _cvxpy_optimum(est, pipe[0].transform(Xn), tn[:, None], np.full(len(tn), 1 / len(tn)))
    assert cert.dual <= p_star + 1e-8 * abs(p_star)
    assert cert.gap == pytest.approx(cert.primal - cert.dual)


def test_certify_errors(classification_csv, tmp_path, capsys):
    csv_path, X, y = classification_csv
    model_path = tmp_path / "m.npz"
    assert _fit(csv_path, "--target", "label", "--output", model_path) == 0
    capsys.readouterr()
    _assert_user_error(capsys, ["certify", model_path, csv_path, "--target", "nope"],
                       "column 'nope' not found")
    other = _write_csv(tmp_path / "other.csv", ["x1", "x2", "label", "x3"],
                       [["1", "2", "bird", "3"], ["1", "2", "cat", "3"]])
    _assert_user_error(capsys, ["certify", model_path, other, "--target", "label"],
                       "label(s) the model was not trained on: bird")
    _assert_user_error(capsys, ["certify", tmp_path / "none.npz", csv_path, "--target", "label"],
                       "no such model file")
    _assert_user_error(capsys, ["certify", model_path, csv_path], "--target")


# --------------------------------------------------------------------------- export


def test_export_npz_and_onnx(classification_csv, tmp_path, capsys):
    csv_path, X, y = classification_csv
    model_path = tmp_path / "m.npz"
    assert _fit(csv_path, "--target", "label", "--output", model_path) == 0
    pipe = load(model_path)
    capsys.readouterr()
    assert main(["export", str(model_path), "--format", "npz", str(tmp_path / "w.npz")]) == 0
    assert "exported as npz" in capsys.readouterr().out
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        H = (X - z["scaler_mean"]) / z["scaler_scale"]
        f = np.maximum(H @ z["W1"] + z["b1"], 0) @ z["W2"] + z["b2"]
    np.testing.assert_allclose(f[:, 0], pipe.decision_function(X), rtol=1e-12, atol=1e-12)

    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from convexnn.export import onnx as onnx_export

    # the CLI's exporter with torch's fast TorchScript path (the default one is slower)
    original = onnx_export.to_onnx
    onnx_export.to_onnx = lambda model, path: original(model, path, dynamo=False)
    try:
        assert main(["export", str(model_path), "--format", "onnx", str(tmp_path / "m.onnx")]) == 0
    finally:
        onnx_export.to_onnx = original
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    scores, proba = session.run(None, {"X": X})
    np.testing.assert_allclose(scores, pipe.decision_function(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(proba, pipe.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_export_errors(classification_csv, tmp_path, capsys):
    csv_path, _, _ = classification_csv
    model_path = tmp_path / "m.npz"
    assert _fit(csv_path, "--target", "label", "--output", model_path) == 0
    capsys.readouterr()
    _assert_user_error(capsys, ["export", model_path, "--format", "pickle", tmp_path / "x"],
                       "invalid choice")
    _assert_user_error(capsys, ["export", model_path, "--format", "npz",
                                tmp_path / "no" / "dir" / "x.npz"], "cannot write")


# --------------------------------------------------------------------------- fit extras


def test_fit_class_weight_and_verbose(classification_csv, regression_csv, tmp_path, capsys):
    csv_path, _, _ = classification_csv
    model_path = tmp_path / "m.npz"
    assert _fit(csv_path, "--target", "label", "--class-weight", "balanced", "-vv", "--activation", "gated_relu",
                "--output", model_path) == 0
    err = capsys.readouterr().err
    # -vv: one line per gap check, from whichever solver "auto" picked
    assert "[fista] iter" in err or "[barrier] iter" in err
    est = load(model_path)[-1]
    assert est.class_weight == "balanced" and est.verbose == 2
    _assert_user_error(capsys, ["fit", regression_csv[0], "--target", "price",
                                "--class-weight", "balanced"], "classification only")


# --------------------------------------------------------------------------- path


def test_path_writes_table_and_plot(regression_csv, tmp_path, capsys):
    convexnn = pytest.importorskip("convexnn")
    if not hasattr(convexnn, "regularization_path"):
        pytest.skip("regularization_path is not available yet")
    csv_path, _, _ = regression_csv
    table = tmp_path / "path.csv"
    argv = ["path", str(csv_path), "--target", "price", "--n-alphas", "4", "--out", str(table),
            "--n-patterns", N_PATTERNS]
    assert main(argv) == 0
    assert "table written to" in capsys.readouterr().out
    header, rows = _read_csv(table)
    assert len(rows) == 4
    assert "alpha" in header and "n_neurons" in header
    alphas = [float(r[header.index("alpha")]) for r in rows]
    assert alphas == sorted(alphas, reverse=True)
    assert int(rows[0][header.index("n_neurons")]) == 0  # alpha_max: the constant model

    pytest.importorskip("matplotlib")
    plotting = pytest.importorskip("convexnn.plotting")
    if not hasattr(plotting, "RegularizationPathDisplay"):
        pytest.skip("RegularizationPathDisplay is not available yet")
    png = tmp_path / "path.png"
    assert main([*argv, "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_leaky_relu_with_its_slope(regression_csv, tmp_path, capsys):
    csv_path, _, _ = regression_csv
    model_path = tmp_path / "leaky.npz"
    assert _fit(csv_path, "--target", "price", "--activation", "leaky_relu", "--negative-slope", "0.2",
                "--output", model_path) == 0
    est = load(model_path)[-1]
    assert est.activation == "leaky_relu" and est.negative_slope == 0.2
    assert est.certificate_.activation == "leaky_relu"
    capsys.readouterr()
    _assert_user_error(capsys, ["fit", csv_path, "--target", "price", "--activation", "leaky_relu",
                                "--negative-slope", "1.5"], "slope must be in [0, 1)")


def test_fit_pattern_search(regression_csv, tmp_path, capsys):
    csv_path, X, target = regression_csv
    model_path = tmp_path / "house.npz"
    assert _fit(csv_path, "--target", "price", "--no-standardize", "--test-size", 0,
                "--pattern-search", 2, "--output", model_path) == 0
    capsys.readouterr()
    model = load(model_path)
    assert model.pattern_search == 2
    assert 1 <= len(model.search_history_) <= 2  # saved and loaded with the model
    assert model.search_history_[0]["descent_objective"] <= model.search_history_[0]["objective_before"]
    _assert_user_error(capsys, ["fit", csv_path, "--target", "price", "--activation", "gated_relu",
                                "--pattern-search", 1], "--pattern-search needs --activation relu")
    _assert_user_error(capsys, ["fit", csv_path, "--target", "price", "--pattern-search", -1],
                       "expected an integer >= 0")
