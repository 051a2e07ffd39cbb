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
                                  ["predict", "--help"]])
def test_help(argv, capsys):
    assert main(argv) == 0
    assert "usage: convexnn" in capsys.readouterr().out


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
