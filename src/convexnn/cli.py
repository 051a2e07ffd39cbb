"""Command line interface: ``convexnn fit | predict | certify | path | export | demo``.

Run ``convexnn --help`` or ``convexnn COMMAND --help`` for the options. Errors that the
user can cause (a missing file, a bad column, an invalid option) print one line starting
with ``convexnn: error:`` on stderr and exit with status 2.

Data files are CSV (header row required), read with the :mod:`csv` module and NumPy
only (pandas is not needed), or Parquet (``.parquet`` / ``.pq``), read with pandas and
pyarrow (the ``parquet`` extra: ``pip install 'convexnn[parquet]'``).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

import numpy as np

from ._version import __version__

__all__ = ["main"]

#: A numeric target with at most this many distinct integer values is taken as class labels.
MAX_AUTO_CLASSES = 20


class CLIError(Exception):
    """An error caused by the user's input; reported without a traceback, exit status 2."""


class _UsageError(Exception):
    def __init__(self, usage: str, message: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.message = message


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are reported by :func:`main` (not by ``sys.exit``)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.format_usage(), message)


# --------------------------------------------------------------------------- CSV input


@dataclass
class _Table:
    """A CSV file read as strings: column names and rows (all of the same length)."""

    path: Path
    columns: list[str]
    rows: list[list[str]]
    lines: list[int] = field(default_factory=list)  # file line number of each row

    def column_index(self, name: str) -> int:
        try:
            return self.columns.index(name)
        except ValueError:
            raise CLIError(
                f"column {name!r} not found in {self.path}; its columns are: "
                f"{', '.join(self.columns)}"
            ) from None

    def raw_column(self, index: int) -> list[str]:
        return [row[index] for row in self.rows]

    def numeric(self, indices: Sequence[int]) -> np.ndarray:
        """Columns ``indices`` as a float array; names the first non-numeric cell otherwise."""
        out = np.empty((len(self.rows), len(indices)), dtype=np.float64)
        for j, index in enumerate(indices):
            values = self.raw_column(index)
            try:
                out[:, j] = np.asarray(values, dtype=np.str_).astype(np.float64)
            except ValueError:
                parsed = [_parse_float(value) for value in values]
                for i, number in enumerate(parsed):
                    if number is None:
                        raise CLIError(
                            f"column {self.columns[index]!r} is not numeric: row {i + 1} "
                            f"(line {self.lines[i]} of {self.path}) has {values[i]!r}; all "
                            "feature columns must be numbers"
                        ) from None
                out[:, j] = parsed
        return out


def _parse_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


#: File suffixes read as Parquet (everything else is read as CSV).
PARQUET_SUFFIXES = (".parquet", ".pq")


def _read_table(path: str | Path) -> _Table:
    """Read a CSV or (by suffix) Parquet file into a table of strings."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"no such file: {path}")
    if not path.is_file():
        raise CLIError(f"not a file: {path}")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path)
    return _read_csv(path)


def _cell_text(value: Any) -> str:
    """A Parquet cell as the text a CSV file would hold (floats exactly, via repr)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    try:  # pandas' missing-value markers (NA, NaT)
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return ""
    except ImportError:  # pragma: no cover - pandas is present when this runs
        pass
    return str(value)


def _read_parquet(path: Path) -> _Table:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        raise CLIError(
            f"reading {path} needs pandas and pyarrow (the parquet extra): "
            "pip install 'convexnn[parquet]'"
        ) from None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several exception types for bad files
        raise CLIError(f"{path} is not a readable Parquet file ({exc})") from None
    columns = [str(name).strip() for name in frame.columns]
    seen: set[str] = set()
    for name in columns:
        if not name:
            raise CLIError(f"{path}: a column has an empty name")
        if name in seen:
            raise CLIError(f"{path}: column {name!r} appears twice")
        seen.add(name)
    if len(frame) == 0:
        raise CLIError(f"{path} has no rows")
    cells = [[_cell_text(v) for v in frame.iloc[:, j].tolist()] for j in range(len(columns))]
    rows = [list(row) for row in zip(*cells)]
    # "line" of row i for messages: the row number (Parquet has no lines)
    return _Table(path, columns, rows, list(range(1, len(rows) + 1)))


def _read_csv(path: str | Path) -> _Table:
    path = Path(path)
    if not path.exists():
        raise CLIError(f"no such file: {path}")
    if not path.is_file():
        raise CLIError(f"not a file: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise CLIError(f"{path} is empty")
            columns = [name.strip() for name in header]
            seen: set[str] = set()
            for name in columns:
                if not name:
                    raise CLIError(f"{path}: the header row has an empty column name")
                if name in seen:
                    raise CLIError(f"{path}: column {name!r} appears twice in the header row")
                seen.add(name)
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise CLIError(
                        f"{path}: line {reader.line_num} has {len(row)} fields, the header has "
                        f"{len(columns)}"
                    )
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path} is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise CLIError(f"{path} is not a valid CSV file ({exc})") from None
    if not rows:
        raise CLIError(f"{path} has a header row but no data rows")
    return _Table(path, columns, rows, lines)


# --------------------------------------------------------------------------- reports


@dataclass
class _FitResult:
    """What the report shows about one fitted model."""

    name: str
    score_label: str
    score: float
    neurons: str
    fit_seconds: float
    objective: str = "n/a"
    gap: str = "n/a"
    converged: str = "yes"
    notes: list[str] = field(default_factory=list)


def _final_step(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return model[-1] if isinstance(model, Pipeline) else model


def _timed_fit(model: Any, X: np.ndarray, y: np.ndarray) -> tuple[float, list[str]]:
    """Fit ``model``; return the wall time and the messages of any ConvergenceWarning."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    messages = []
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            messages.append(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return seconds, messages


def _describe_convex(model: Any, score_label: str, score: float, seconds: float,
                     warned: list[str]) -> _FitResult:
    est = _final_step(model)
    result = _FitResult(
        name=f"{type(est).__name__}({est.activation})",
        score_label=score_label,
        score=score,
        neurons=str(getattr(est, "n_neurons_", "n/a")),
        fit_seconds=seconds,
        converged="no" if warned else "yes",
    )
    cert = getattr(est, "certificate_", None)
    if cert is not None:
        primal = getattr(cert, "primal", None)
        if primal is not None:
            result.objective = f"{primal:.6g}"
        gap = getattr(cert, "gap", None)
        rel = getattr(cert, "relative_gap", None)
        if gap is not None:
            result.gap = f"{gap:.2e}" + (f" (relative {rel:.2e})" if rel is not None else "")
        result.notes.append(f"certificate: {cert}")
        certifies = getattr(cert, "certifies", None)
        if certifies:
            result.notes.append(f"certifies:   {certifies}")
    elif getattr(est, "dual_gap_", None) is not None:
        result.gap = f"{est.dual_gap_:.2e}"
    result.notes.extend(f"warning:     {msg}" for msg in warned)
    return result


def _print_report(results: Sequence[_FitResult], out: TextIO) -> None:
    """Print the results side by side, one column per model, labels aligned."""
    rows = [
        ("", [r.name for r in results]),
        (results[0].score_label, [f"{r.score:.4f}" for r in results]),
        ("neurons used", [r.neurons for r in results]),
        ("objective J", [r.objective for r in results]),
        ("duality gap", [r.gap for r in results]),
        ("converged", [r.converged for r in results]),
        ("fit time", [f"{r.fit_seconds:.2f} s" for r in results]),
    ]
    label_width = max(len(label) for label, _ in rows) + 2
    widths = [max(len(values[k]) for _, values in rows) + 3 for k in range(len(results))]
    for label, values in rows:
        cells = "".join(v.ljust(w) for v, w in zip(values, widths))
        print(f"  {label.ljust(label_width)}{cells}".rstrip(), file=out)
    for r in results:
        if r.notes:
            print(file=out)
            print(f"  {r.name}", file=out)
            for note in r.notes:
                print(textwrap.fill(note, width=100, initial_indent="    ",
                                    subsequent_indent=" " * 17), file=out)


# --------------------------------------------------------------------------- commands


def _cmd_demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from convexnn import ConvexMLPClassifier

    out = sys.stdout
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    print(
        f"convexnn {__version__} demo: breast cancer data (bundled with scikit-learn), "
        f"{X.shape[0]} samples, {X.shape[1]} features, 2 classes",
        file=out,
    )
    print(
        f"stratified split: {len(y_train)} train / {len(y_test)} test (random_state=0), "
        "features standardized on the train part",
        file=out,
    )
    print(file=out)

    params: dict[str, Any] = {"random_state": args.seed, "activation": args.activation}
    if args.n_patterns is not None:
        params["n_patterns"] = args.n_patterns
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    convex = ConvexMLPClassifier(**params)
    seconds, warned = _timed_fit(convex, X_train, y_train)
    convex_result = _describe_convex(
        convex, "test accuracy", convex.score(X_test, y_test), seconds, warned
    )

    mlp = MLPClassifier(random_state=args.seed, max_iter=1000)
    seconds, warned = _timed_fit(mlp, X_train, y_train)
    mlp_result = _FitResult(
        name="MLPClassifier",
        score_label="test accuracy",
        score=mlp.score(X_test, y_test),
        neurons=", ".join(str(width) for width in np.atleast_1d(mlp.hidden_layer_sizes)),
        fit_seconds=seconds,
        converged="no" if warned else "yes",
        notes=[f"scikit-learn Adam, {mlp.n_iter_} epochs; no optimality certificate"]
        + [f"warning:     {msg}" for msg in warned],
    )
    _print_report([convex_result, mlp_result], out)
    return 0


def _choose_task(requested: str, raw: list[str], name: str) -> tuple[str, str]:
    """Return (task, reason) for the target column's raw strings."""
    numbers = [_parse_float(v) for v in raw]
    numeric = all(v is not None for v in numbers)
    if requested != "auto":
        if requested == "regression" and not numeric:
            bad = next(v for v, num in zip(raw, numbers) if num is None)
            raise CLIError(
                f"--task regression needs a numeric target, but column {name!r} has {bad!r}"
            )
        return requested, "as requested"
    if not numeric:
        return "classification", f"auto: target {name!r} is not numeric"
    distinct = set(numbers)
    integral = all(math.isfinite(v) and float(v).is_integer() for v in distinct)
    if integral and len(distinct) <= MAX_AUTO_CLASSES:
        return "classification", (
            f"auto: target {name!r} has {len(distinct)} distinct integer values "
            f"(<= {MAX_AUTO_CLASSES})"
        )
    return "regression", (
        f"auto: target {name!r} is numeric with {len(distinct)} distinct values"
        + ("" if integral else ", not all integers")
    )


def _target_array(raw: list[str], task: str) -> np.ndarray:
    numbers = [_parse_float(v) for v in raw]
    if task == "regression":
        return np.asarray(numbers, dtype=np.float64)
    if all(v is not None for v in numbers):
        values = np.asarray(numbers, dtype=np.float64)
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return values.astype(np.int64)
    # Non-numeric, or non-integer numbers used as class labels: keep the text.
    return np.asarray(raw, dtype=np.str_)


def _cmd_fit(args: argparse.Namespace) -> int:
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from convexnn import ConvexMLPClassifier, ConvexMLPRegressor
    from convexnn.io import save

    if not 0.0 <= args.test_size < 1.0:
        raise CLIError(f"--test-size must be in [0, 1), got {args.test_size}")
    table = _read_table(args.csv)
    target_index = table.column_index(args.target)
    feature_indices = [i for i in range(len(table.columns)) if i != target_index]
    if not feature_indices:
        raise CLIError(f"{table.path} has no feature columns besides the target {args.target!r}")
    feature_names = [table.columns[i] for i in feature_indices]
    raw_target = table.raw_column(target_index)
    for i, value in enumerate(raw_target):
        if not value:
            raise CLIError(
                f"target column {args.target!r} is empty at row {i + 1} "
                f"(line {table.lines[i]} of {table.path})"
            )
    X = table.numeric(feature_indices)
    task, reason = _choose_task(args.task, raw_target, args.target)
    y = _target_array(raw_target, task)
    print(f"task: {task} ({reason})")

    if args.test_size > 0:
        stratify = y if task == "classification" else None
        try:
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=args.test_size, random_state=args.seed, stratify=stratify
            )
        except ValueError:
            if stratify is None:
                raise CLIError(
                    f"cannot hold out --test-size {args.test_size} of {len(y)} rows"
                ) from None
            # Some class is too rare to stratify: fall back to a plain random split.
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=args.test_size, random_state=args.seed
            )
        split = f"{len(y_train)} train / {len(y_test)} test rows (--test-size {args.test_size})"
    else:
        X_train, y_train, X_test, y_test = X, y, X, y
        split = f"all {len(y)} rows used for training (--test-size 0: no held-out score)"
    print(f"data: {table.path}, {X.shape[1]} features, {split}")

    est_cls = ConvexMLPClassifier if task == "classification" else ConvexMLPRegressor
    params: dict[str, Any] = {
        "activation": args.activation,
        "random_state": args.seed,
    }
    if args.activation == "leaky_relu":
        params["negative_slope"] = args.negative_slope
    if args.alpha is not None:
        params["alpha"] = args.alpha
    if args.n_patterns is not None:
        params["n_patterns"] = args.n_patterns
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    if args.pattern_search:
        if args.activation == "gated_relu":
            raise CLIError("--pattern-search needs --activation relu, leaky_relu or abs "
                           "(a gated ReLU network's gates are fixed)")
        params["pattern_search"] = args.pattern_search
    if args.class_weight is not None:
        if task != "classification":
            raise CLIError("--class-weight applies to classification only")
        params["class_weight"] = args.class_weight
    if args.verbose:
        params["verbose"] = args.verbose
    est = est_cls(**params)
    model = est if args.no_standardize else make_pipeline(StandardScaler(), est)
    print()
    try:
        seconds, warned = _timed_fit(model, X_train, y_train)
    except ValueError as exc:  # invalid parameters or data the estimator rejects
        raise CLIError(f"fit failed: {exc}") from None

    held_out = args.test_size > 0
    metric = "accuracy" if task == "classification" else "R^2"
    label = f"{'test' if held_out else 'train'} {metric}"
    result = _describe_convex(model, label, model.score(X_test, y_test), seconds, warned)
    _print_report([result], sys.stdout)

    output = Path(args.output) if args.output else table.path.with_name(
        f"{table.path.stem}.convexnn.npz"
    )
    metadata = {
        "cli": {
            "feature_names": feature_names,
            "target": args.target,
            "task": task,
            "standardize": not args.no_standardize,
            "trained_on": table.path.name,
            "n_train": int(len(y_train)),
            "test_size": args.test_size,
        }
    }
    try:
        save(model, output, metadata=metadata)
    except OSError as exc:
        raise CLIError(f"cannot write {output}: {exc.strerror or exc}") from None
    print()
    trained = "the train part" if held_out else "all rows"
    print(f"model (fitted on {trained} only) saved to {output}")
    return 0


def _format_cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (np.integer, np.bool_)):
        return str(value.item())
    return str(value)


def _load_model(path_text: str) -> tuple[Any, dict, Path]:
    """``(model, metadata, path)`` of a saved model; CLIError if it cannot be read."""
    from convexnn.io import load

    model_path = Path(path_text)
    if not model_path.is_file():
        raise CLIError(f"no such model file: {model_path}")
    try:
        model, metadata = load(model_path, return_metadata=True)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return model, metadata, model_path


def _model_features(model: Any, metadata: dict, table: _Table, model_path: Path,
                    exclude: int | None = None) -> np.ndarray:
    """The model's feature columns of ``table`` as floats, matched by name when the
    model (or the CLI metadata) knows the names, else by position (leaving out column
    ``exclude``, e.g. the target)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None and isinstance(metadata.get("cli"), dict):
        names = metadata["cli"].get("feature_names")
    n_features = getattr(model, "n_features_in_", None)
    if n_features is None:
        raise CLIError(f"{model_path} holds an unfitted model; fit it before predicting")
    if names is not None:
        names = [str(n) for n in names]
        missing = [n for n in names if n not in table.columns]
        if missing:
            raise CLIError(
                f"{table.path} lacks the model's feature column(s): {', '.join(missing)}"
            )
        indices = [table.columns.index(n) for n in names]
    else:
        indices = [i for i in range(len(table.columns)) if i != exclude]
        if len(indices) != n_features:
            raise CLIError(
                f"{model_path} stores no feature names, so {table.path} must have exactly "
                f"its {n_features} feature columns in training order (it has {len(indices)})"
            )
    return table.numeric(indices)


def _cmd_predict(args: argparse.Namespace) -> int:
    from sklearn.base import is_classifier

    model, metadata, model_path = _load_model(args.model)
    table = _read_table(args.csv)
    X = _model_features(model, metadata, table, model_path)

    with warnings.catch_warnings():
        # Columns were matched by name above; a model fitted on a DataFrame would
        # otherwise warn that this array has no feature names.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        predictions = np.asarray(model.predict(X))
        classifier = is_classifier(model) and hasattr(model, "predict_proba")
        proba = np.asarray(model.predict_proba(X)) if classifier else None

    if predictions.ndim == 2:
        header = [f"prediction_{k}" for k in range(predictions.shape[1])]
    else:
        header = ["prediction"]
        predictions = predictions.reshape(-1, 1)
    if proba is not None:
        header += [f"proba_{_format_cell(c)}" for c in model.classes_]
    body = [
        [_format_cell(v) for v in predictions[i]]
        + ([_format_cell(p) for p in proba[i]] if proba is not None else [])
        for i in range(len(predictions))
    ]

    def write(fh: TextIO) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)

    if args.output:
        try:
            with open(args.output, "w", newline="", encoding="utf-8") as fh:
                write(fh)
        except OSError as exc:
            raise CLIError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"{len(body)} predictions written to {args.output}", file=sys.stderr)
    else:
        write(sys.stdout)
    return 0


def _certify_saved(model: Any, X: np.ndarray, raw_target: list[str], target: str) -> Any:
    """The certificate of a saved model's network on ``(X, target)``.

    The program is rebuilt from the saved gates and the new data (uniform sample
    weights, times the model's ``class_weight`` if it has one), the primal is the
    objective ``J`` of the saved network on that data, and the dual bound comes from
    the network's outputs (for ReLU with the exact dual norms, by cone projections).
    """
    from sklearn.base import is_classifier

    from convexnn.certificates import certify, dual_point_from_outputs
    from convexnn.patterns import Patterns

    est = _final_step(model)
    needed = ("gates_", "convex_coef_", "intercepts_", "_program", "to_network")
    if not all(hasattr(est, name) for name in needed):
        raise CLIError(
            f"certify needs a model fitted on sampled activation patterns (gates_, "
            f"convex_coef_); a {type(est).__name__} has no such program"
        )
    if _final_step(model) is not model:
        X = model[:-1].transform(X)
    if is_classifier(est):
        y = _target_array(raw_target, "classification")
        classes = est.classes_
        index = {label: k for k, label in enumerate(classes.tolist())}
        codes = [index.get(label) for label in y.tolist()]
        unknown = sorted({str(v) for v, c in zip(y.tolist(), codes) if c is None})
        if unknown:
            raise CLIError(
                f"target {target!r} holds label(s) the model was not trained on: "
                f"{', '.join(unknown[:5])} (its classes: {', '.join(map(str, classes))})"
            )
        codes = np.asarray(codes, dtype=np.int64)
        Y = codes.astype(float)[:, None] if len(classes) == 2 else np.eye(len(classes))[codes]
    else:
        y = _target_array(raw_target, "regression")
        if not np.all(np.isfinite(y)):
            raise CLIError(f"target {target!r} has missing or non-finite values")
        Y = y.reshape(len(y), -1)
        if Y.shape[1] != est.n_outputs_:
            raise CLIError(f"the model has {est.n_outputs_} outputs, the data 1 target column")
    if not np.all(np.isfinite(X)):
        raise CLIError("the feature columns have missing or non-finite values")
    n = X.shape[0]
    # the training objective's weighting: uniform, times class_weight for classifiers
    w = np.asarray(est._weight_samples(y, np.ones(n)), dtype=float)
    if not w.sum() > 0:
        raise CLIError("the class weights of this data sum to zero")
    w = w / w.sum()
    # on new data the saved gates are not known to enumerate every pattern: "sampled"
    program = est._program(X, Y, w, Patterns(np.asarray(est.gates_, dtype=float), complete=False))
    coef = np.asarray(est.convex_coef_, dtype=float)
    if coef.shape != program.coef_shape:
        raise CLIError(
            f"the saved solution has shape {coef.shape}, the rebuilt program needs "
            f"{program.coef_shape}; the model file is inconsistent"
        )
    intercept = np.asarray(est.intercepts_[1], dtype=float)
    network = est.to_network()
    Z = network.forward(X)
    primal = network.objective(X, Y, w, program.loss, float(est.alpha))
    points = [dual_point_from_outputs(program, Z), dual_point_from_outputs(
        program, program.predict(coef, intercept))]
    return certify(
        program, coef, intercept, points, activation=str(est.activation), tol=float(est.tol),
        primal=primal, refine=True,
    )


def _cmd_certify(args: argparse.Namespace) -> int:
    model, metadata, model_path = _load_model(args.model)
    if getattr(_final_step(model), "n_features_in_", None) is None:
        raise CLIError(f"{model_path} holds an unfitted model; fit it before certifying")
    table = _read_table(args.data)
    target_index = table.column_index(args.target)
    X = _model_features(model, metadata, table, model_path, exclude=target_index)
    raw_target = table.raw_column(target_index)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        cert = _certify_saved(model, X, raw_target, args.target)
    est = _final_step(model)
    saved = getattr(est, "certificate_", None)
    out = sys.stdout
    print(f"model: {model_path} ({type(est).__name__}, activation {est.activation}, "
          f"alpha {est.alpha:g}, {getattr(est, 'n_neurons_', '?')} neurons)", file=out)
    print(f"data:  {table.path}, {X.shape[0]} rows, target {args.target!r}", file=out)
    print(file=out)
    print(f"  certificate on this data: {cert}", file=out)
    print(textwrap.fill(cert.certifies, width=100, initial_indent="  certifies: ",
                        subsequent_indent=" " * 13), file=out)
    if cert.cone_violation > 0:
        print(f"  cone violation on this data: {cert.cone_violation:.2e} (the ReLU program's "
              "constraints are data-dependent; the primal is the network's exact objective)",
              file=out)
    if saved is not None:
        print(f"  certificate at training:  {saved}", file=out)
    print("  scope: the saved gates are re-used on this data; they are not known to "
          "enumerate its activation patterns, so the scope is 'sampled'", file=out)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from convexnn.export import export_model

    model, _, model_path = _load_model(args.model)
    try:
        written = export_model(model, args.out, args.format)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"cannot export {model_path}: {exc}") from None
    except OSError as exc:
        raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"{model_path} exported as {args.format} to {written}")
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    from sklearn.preprocessing import StandardScaler

    try:
        from convexnn import ConvexMLPClassifier, ConvexMLPRegressor, regularization_path
    except ImportError:
        raise CLIError("this convexnn has no regularization_path yet") from None

    table = _read_table(args.data)
    target_index = table.column_index(args.target)
    feature_indices = [i for i in range(len(table.columns)) if i != target_index]
    if not feature_indices:
        raise CLIError(f"{table.path} has no feature columns besides the target {args.target!r}")
    raw_target = table.raw_column(target_index)
    X = table.numeric(feature_indices)
    task, reason = _choose_task(args.task, raw_target, args.target)
    y = _target_array(raw_target, task)
    if not args.no_standardize:
        X = StandardScaler().fit_transform(X)
    print(f"task: {task} ({reason}); {X.shape[0]} rows, {X.shape[1]} features"
          + ("" if args.no_standardize else ", standardized"))
    est_cls = ConvexMLPClassifier if task == "classification" else ConvexMLPRegressor
    params: dict[str, Any] = {"activation": args.activation, "random_state": args.seed}
    if args.activation == "leaky_relu":
        params["negative_slope"] = args.negative_slope
    if args.n_patterns is not None:
        params["n_patterns"] = args.n_patterns
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    try:
        path = regularization_path(
            X, y, estimator=est_cls(**params), n_alphas=args.n_alphas, verbose=args.verbose
        )
    except ValueError as exc:
        raise CLIError(f"path failed: {exc}") from None
    try:
        written = path.write_csv(args.out)
    except OSError as exc:
        raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"{len(path.alphas)} alphas from {path.alphas[0]:.4g} (alpha_max) to "
          f"{path.alphas[-1]:.4g}; table written to {written}")
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            raise CLIError(
                "--plot needs matplotlib (the plot extra): pip install 'convexnn[plot]'"
            ) from None
        try:
            from convexnn.plotting import RegularizationPathDisplay
        except ImportError as exc:
            raise CLIError(f"this convexnn cannot plot paths yet ({exc})") from None
        display = RegularizationPathDisplay.from_path(path).plot()
        figure = display.figure_
        try:
            figure.savefig(args.plot, dpi=120, bbox_inches="tight")
        except OSError as exc:
            raise CLIError(f"cannot write {args.plot}: {exc.strerror or exc}") from None
        finally:
            import matplotlib.pyplot as plt

            plt.close(figure)
        print(f"plot written to {args.plot}")
    return 0


# --------------------------------------------------------------------------- parser


def _integer_at_least(text: str, minimum: int, what: str) -> int:
    """argparse type helper: an integer ``>= minimum`` (``what`` names it in the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _integer_at_least(text, 1, "a positive integer")


def _nonnegative_int(text: str) -> int:
    return _integer_at_least(text, 0, "an integer >= 0")


def _slope(text: str) -> float:
    """argparse type: a leaky-ReLU slope in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"the slope must be in [0, 1), got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the ``convexnn`` argument parser (one subparser per command)."""
    parser = _Parser(
        prog="convexnn",
        description=(
            "Train two-layer ReLU networks to a certified global optimum by convex "
            "optimization."
        ),
    )
    parser.add_argument("--version", action="version", version=f"convexnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="compare ConvexMLPClassifier with scikit-learn's MLPClassifier on bundled data",
        description=(
            "Fit ConvexMLPClassifier and scikit-learn's MLPClassifier on the breast cancer "
            "data bundled with scikit-learn (no download) and print test accuracy, neurons, "
            "training objective, duality gap and fit time for both."
        ),
    )
    demo.add_argument("--n-patterns", type=_positive_int, default=None, metavar="N",
                      help="number of sampled activation patterns (default: the estimator's)")
    demo.add_argument("--max-iter", type=_positive_int, default=None, metavar="K",
                      help="ConvexMLPClassifier's solver iteration budget (default: the "
                      "estimator's)")
    demo.add_argument("--seed", type=int, default=0, metavar="S",
                      help="random_state of both models (default: 0)")
    demo.add_argument("--activation", choices=["gated_relu", "relu"], default="gated_relu",
                      help="gated_relu (default): certified to the estimator's tol in about "
                      "a second; relu: the cone-constrained program, whose solver is still "
                      "slow (about a minute here, stopping with a reported gap of ~10%%)")
    demo.set_defaults(func=_cmd_demo)

    fit = sub.add_parser(
        "fit",
        help="fit a model on a CSV file and save it",
        description=(
            "Fit a convexnn model on a CSV file (header row required; all columns except "
            "the target must be numeric), report its held-out score and optimality "
            "certificate, and save it with convexnn.io.save."
        ),
    )
    fit.add_argument("csv", help="training data (CSV with a header row, or .parquet/.pq)")
    fit.add_argument("--target", required=True, metavar="COLUMN", help="name of the target column")
    fit.add_argument("--task", choices=["classification", "regression", "auto"], default="auto",
                     help="auto (default): classification if the target is non-numeric or has "
                     f"at most {MAX_AUTO_CLASSES} distinct integer values, else regression")
    fit.add_argument("--activation", choices=["relu", "gated_relu", "leaky_relu", "abs"], default="relu",
                     help="hidden activation (default: relu)")
    fit.add_argument("--negative-slope", type=_slope, default=0.01, metavar="S",
                     help="slope of leaky_relu for negative inputs, in [0, 1) (default: 0.01)")
    fit.add_argument("--alpha", type=_nonnegative_float, default=None, metavar="A",
                     help="regularization strength (default: the estimator's)")
    fit.add_argument("--n-patterns", type=_positive_int, default=None, metavar="P",
                     help="number of sampled activation patterns (default: the estimator's)")
    fit.add_argument("--max-iter", type=_positive_int, default=None, metavar="K",
                     help="solver iteration budget (default: the estimator's)")
    fit.add_argument("--pattern-search", type=_nonnegative_int, default=0, metavar="R",
                     help="rounds of pattern search after the first solve (ReLU, leaky ReLU, abs): "
                          "a local descent of the network, then a certified re-solve over its units' "
                          "patterns; each round's J is at most the last one's (default 0)")
    fit.add_argument("--output", "-o", default=None, metavar="MODEL",
                     help="where to save the model (default: <csv stem>.convexnn.npz next to "
                     "the CSV)")
    fit.add_argument("--no-standardize", action="store_true",
                     help="do not put a StandardScaler before the estimator")
    fit.add_argument("--test-size", type=_nonnegative_float, default=0.2, metavar="F",
                     help="fraction of rows held out for the test score; 0 disables "
                     "(default: 0.2). The saved model is fitted on the remaining rows.")
    fit.add_argument("--seed", type=int, default=0, metavar="S",
                     help="random_state of the split and the estimator (default: 0)")
    fit.add_argument("--class-weight", choices=["balanced"], default=None,
                     help="classification only: 'balanced' weighs classes inversely to "
                     "their frequency (scikit-learn's class_weight='balanced')")
    fit.add_argument("--verbose", "-v", action="count", default=0,
                     help="show a live progress bar for fits longer than a second; -vv: "
                     "one line per duality-gap check. Ctrl-C stops the fit and keeps (and "
                     "saves) the network reached so far, with its certificate")
    fit.set_defaults(func=_cmd_fit)

    predict = sub.add_parser(
        "predict",
        help="predict with a saved model",
        description=(
            "Load a model saved by `convexnn fit` or convexnn.io.save and predict the rows "
            "of a CSV file. Feature columns are matched by name when the model knows them "
            "(other columns, such as the target, are ignored). Writes a column "
            "'prediction' and, for classifiers, one column 'proba_<class>' per class."
        ),
    )
    predict.add_argument("model", help="model file written by `convexnn fit` or convexnn.io.save")
    predict.add_argument("csv", help="data to predict (CSV with a header row, or .parquet/.pq)")
    predict.add_argument("--output", "-o", default=None, metavar="PREDS",
                         help="write predictions to this CSV file (default: stdout)")
    predict.set_defaults(func=_cmd_predict)

    certify = sub.add_parser(
        "certify",
        help="re-check a saved model on data and print its certificate",
        description=(
            "Load a saved model, rebuild its convex program from the saved activation "
            "gates and the given data, and print the duality-gap certificate of the saved "
            "network on that data: its objective J there, a proven lower bound for every "
            "network over the same patterns, and the gap between them. Feature columns "
            "are matched by name when the model knows them."
        ),
    )
    certify.add_argument("model", help="model file written by `convexnn fit` or convexnn.save")
    certify.add_argument("data", help="data with the target column (CSV, or .parquet/.pq)")
    certify.add_argument("--target", required=True, metavar="COLUMN",
                         help="name of the target column")
    certify.set_defaults(func=_cmd_certify)

    path = sub.add_parser(
        "path",
        help="compute the regularization path and write its table (and plot)",
        description=(
            "Solve the convex program for a decreasing log grid of alpha, from alpha_max "
            "(the smallest alpha whose solution is the constant model) down, with warm "
            "starts, and write one row per alpha (objective, dual bound, gap, neurons, "
            "scores) to a CSV table; optionally plot it."
        ),
    )
    path.add_argument("data", help="training data (CSV, or .parquet/.pq)")
    path.add_argument("--target", required=True, metavar="COLUMN", help="name of the target column")
    path.add_argument("--out", required=True, metavar="TABLE", help="CSV file for the path table")
    path.add_argument("--plot", default=None, metavar="PNG",
                      help="also draw the path (needs the plot extra) to this image file")
    path.add_argument("--n-alphas", type=_positive_int, default=20, metavar="N",
                      help="number of alphas on the grid (default: 20)")
    path.add_argument("--task", choices=["classification", "regression", "auto"], default="auto",
                      help="as for `fit` (default: auto)")
    path.add_argument("--activation", choices=["relu", "gated_relu", "leaky_relu", "abs"],
                      default="gated_relu", help="hidden activation (default: gated_relu, whose solver is fast)")
    path.add_argument("--negative-slope", type=_slope, default=0.01, metavar="S",
                      help="slope of leaky_relu for negative inputs, in [0, 1) (default: 0.01)")
    path.add_argument("--n-patterns", type=_positive_int, default=None, metavar="P",
                      help="number of sampled activation patterns (default: the estimator's)")
    path.add_argument("--max-iter", type=_positive_int, default=None, metavar="K",
                      help="solver iteration budget per alpha (default: the estimator's)")
    path.add_argument("--no-standardize", action="store_true",
                      help="do not standardize the features first")
    path.add_argument("--seed", type=int, default=0, metavar="S",
                      help="random_state of the pattern sampler (default: 0)")
    path.add_argument("--verbose", "-v", action="count", default=0,
                      help="print one line per alpha")
    path.set_defaults(func=_cmd_path)

    export = sub.add_parser(
        "export",
        help="export a saved model to ONNX, torch or plain arrays",
        description=(
            "Write a saved model in another format. onnx: an ONNX graph (input X; outputs "
            "'predictions', or 'decision_function' and 'probabilities' for classifiers; "
            "needs the torch and onnx extras). torch: a torch.export program (.pt2), loaded "
            "with torch.export.load(OUT).module() (needs the torch extra). npz: the "
            "network's weights as named float64 arrays (W1, b1, W2, b2, ...). A "
            "StandardScaler saved with the model is included, so exported models take raw "
            "features."
        ),
    )
    export.add_argument("model", help="model file written by `convexnn fit` or convexnn.save")
    export.add_argument("--format", required=True, choices=["onnx", "torch", "npz"],
                        help="output format")
    export.add_argument("out", help="output file")
    export.set_defaults(func=_cmd_export)
    return parser


def _error(message: str) -> None:
    print(f"convexnn: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``convexnn`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 on a usage or input error (reported on stderr as
        ``convexnn: error: ...``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        sys.stderr.write(exc.usage)
        _error(exc.message)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return func(args)
    except CLIError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `convexnn predict ... | head`): stop
        # quietly, and keep Python from complaining again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
