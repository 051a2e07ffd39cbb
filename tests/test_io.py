"""Tests of convexnn.io: safe (pickle-free) save/load of estimators and pipelines."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.base import BaseEstimator, is_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor
from convexnn import io as cio
from convexnn.certificates import Certificate

N_PATTERNS = 20
MAX_ITER = 500  # round trips need a fitted model, not a converged one: keep fits fast

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# --------------------------------------------------------------------------- helpers


def _make_data(n_samples: int = 60, n_features: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    score = X[:, 0] + X[:, 1] ** 2 - 0.5
    return X, score


def _assert_same(a, b, where: str, *, scalar_type: bool = True) -> None:
    """Recursive equality that is exact for arrays (values, dtype, shape) and NaN-aware.

    NumPy scalars must keep their type unless ``scalar_type`` is False (elements of
    JSON lists such as ``loss_curve_`` come back as Python numbers).
    """
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where}: {type(b)} is not an array"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        if a.dtype.kind in "fc":
            np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            assert a.tolist() == b.tolist(), where
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]", scalar_type=False)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys differ"
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, Certificate):
        assert type(b) is type(a), f"{where}: {type(b)} is not a {type(a).__name__}"
        _assert_same(a.to_dict(), b.to_dict(), f"{where}.to_dict()")
        assert str(a) == str(b), where
        assert a.certifies == b.certifies, where
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(b) is type(a), f"{where}: {type(b)} is not a {type(a).__name__}"
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, BaseEstimator):
        _assert_same_estimator(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{where}: {b!r} is not NaN"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
        if scalar_type and isinstance(a, np.generic):
            assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"


def _fitted_attributes(est) -> dict:
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


def _assert_same_estimator(est, loaded) -> None:
    assert type(loaded) is type(est)
    _assert_same(est.get_params(deep=False), loaded.get_params(deep=False), "params")
    original = _fitted_attributes(est)
    restored = _fitted_attributes(loaded)
    assert set(original) == set(restored)
    for name, value in original.items():
        _assert_same(value, restored[name], name)


def _assert_same_predictions(est, loaded, X) -> None:
    for method in ("predict", "decision_function", "predict_proba"):
        if hasattr(est, method):
            expected = getattr(est, method)(X)
            got = getattr(loaded, method)(X)
            assert np.asarray(got).dtype == np.asarray(expected).dtype, method
            np.testing.assert_array_equal(got, expected, err_msg=method)


def _rewrite(path, change) -> None:
    """Read every array of a model file, let ``change(arrays)`` edit them, write them back."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _edit_header(path, edit, *, resign: bool) -> None:
    """Edit a model file's JSON header; ``resign`` recomputes a valid checksum."""

    def change(arrays):
        header = json.loads(arrays["__header__"].tobytes().decode("utf-8"))
        edit(header)
        if resign:
            body = {k: v for k, v in arrays.items() if k != "__header__"}
            header["checksum"]["value"] = cio._checksum(body, header)
        arrays["__header__"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)

    _rewrite(path, change)


def _header(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return json.loads(data["__header__"].tobytes().decode("utf-8"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def binary_classifier():
    X, score = _make_data()
    y = np.where(score > 0, "yes", "no")  # string class labels (unicode dtype)
    clf = ConvexMLPClassifier(n_patterns=N_PATTERNS, max_iter=MAX_ITER, random_state=0)
    clf.fit(X, y)
    return clf, X


@pytest.fixture(scope="module")
def multiclass_classifier():
    X, score = _make_data(n_samples=75, seed=1)
    labels = np.array(["low", "mid", "high"], dtype=object)
    y = labels[np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))]  # object dtype
    clf = ConvexMLPClassifier(
        activation="gated_relu", n_patterns=N_PATTERNS, max_iter=MAX_ITER, random_state=1
    ).fit(X, y)
    return clf, X


@pytest.fixture(scope="module")
def fitted_pipeline():
    X, score = _make_data(seed=2)
    X = X * [1.0, 10.0, 0.1] + [0.0, 5.0, -1.0]
    reg = ConvexMLPRegressor(n_patterns=N_PATTERNS, max_iter=MAX_ITER, random_state=2)
    pipe = make_pipeline(StandardScaler(), reg).fit(X, score)
    return pipe, X


# --------------------------------------------------------------------------- round trips


def test_roundtrip_binary_classifier_with_string_classes(binary_classifier, tmp_path):
    clf, X = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")
    loaded = cio.load(path)
    assert loaded is not clf
    _assert_same_estimator(clf, loaded)
    assert loaded.classes_.tolist() == ["no", "yes"]
    assert isinstance(loaded.certificate_, Certificate)
    _assert_same_predictions(clf, loaded, X)
    assert set(loaded.predict(X)) <= {"no", "yes"}


def test_roundtrip_multiclass_keeps_object_classes(multiclass_classifier, tmp_path):
    clf, X = multiclass_classifier
    assert clf.classes_.dtype == object  # precondition: labels were given as objects
    loaded = cio.load(cio.save(clf, tmp_path / "multi.npz"))
    assert loaded.classes_.dtype == object
    assert sorted(loaded.classes_.tolist()) == ["high", "low", "mid"]
    _assert_same_estimator(clf, loaded)
    _assert_same_predictions(clf, loaded, X)


@pytest.mark.parametrize("activation", ["relu", "gated_relu", "leaky_relu", "abs"])
def test_roundtrip_regressor(activation, tmp_path):
    X, score = _make_data(seed=3)
    reg = ConvexMLPRegressor(
        activation=activation, alpha=1e-2, n_patterns=N_PATTERNS, max_iter=MAX_ITER, random_state=3
    ).fit(X, score)
    loaded = cio.load(cio.save(reg, tmp_path / "reg.npz"))
    _assert_same_estimator(reg, loaded)
    _assert_same_predictions(reg, loaded, X)
    assert loaded.score(X, score) == reg.score(X, score)


def test_roundtrip_pipeline(fitted_pipeline, tmp_path):
    pipe, X = fitted_pipeline
    loaded = cio.load(cio.save(pipe, tmp_path / "pipe.npz"))
    assert isinstance(loaded, Pipeline)
    assert [name for name, _ in loaded.steps] == [name for name, _ in pipe.steps]
    assert type(loaded[0]) is StandardScaler
    for name in ("mean_", "scale_", "var_", "n_features_in_", "n_samples_seen_"):
        _assert_same(getattr(pipe[0], name), getattr(loaded[0], name), f"scaler.{name}")
    _assert_same(pipe[0].get_params(), loaded[0].get_params(), "scaler params")
    _assert_same_estimator(pipe[-1], loaded[-1])
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    assert loaded.get_params(deep=False)["verbose"] == pipe.get_params(deep=False)["verbose"]


def test_roundtrip_feature_names_from_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    X, score = _make_data(seed=4)
    df = pd.DataFrame(X, columns=["age", "height", "weight"])
    y = np.where(score > 0, 1, 0)
    clf = ConvexMLPClassifier(n_patterns=N_PATTERNS, max_iter=MAX_ITER, random_state=4)
    clf.fit(df, y)
    loaded = cio.load(cio.save(clf, tmp_path / "named.npz"))
    assert loaded.feature_names_in_.tolist() == ["age", "height", "weight"]
    assert loaded.feature_names_in_.dtype == clf.feature_names_in_.dtype
    assert loaded.classes_.dtype == clf.classes_.dtype
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fitted with/without feature names" warning
        np.testing.assert_array_equal(loaded.predict(df), clf.predict(df))


def test_roundtrip_unfitted_estimator_with_array_sampler(tmp_path):
    gates = np.random.default_rng(0).standard_normal((4, 7))
    est = ConvexMLPRegressor(sampler=gates, alpha=0.5, random_state=11)
    loaded = cio.load(cio.save(est, tmp_path / "unfitted.npz"))
    assert _fitted_attributes(loaded) == {}
    params = loaded.get_params(deep=False)
    np.testing.assert_array_equal(params["sampler"], gates)
    assert params["sampler"].dtype == gates.dtype
    assert params["alpha"] == 0.5 and params["random_state"] == 11
    # NumPy scalars keep their exact type.
    est2 = ConvexMLPRegressor(alpha=np.float32(0.25))
    alpha = cio.load(cio.save(est2, tmp_path / "np_scalar.npz")).alpha
    assert type(alpha) is np.float32 and alpha == np.float32(0.25)


def test_metadata_roundtrip_and_path_is_written_as_given(binary_classifier, tmp_path):
    clf, X = binary_classifier
    path = tmp_path / "model.bin"  # no .npz suffix must be appended
    returned = cio.save(clf, path, metadata={"note": "hello", "columns": ["a", "b"]})
    assert returned == path and path.is_file()
    assert not (tmp_path / "model.bin.npz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]  # no temp file left behind
    model, metadata = cio.load(path, return_metadata=True)
    assert metadata == {"note": "hello", "columns": ["a", "b"]}
    np.testing.assert_array_equal(model.predict(X), clf.predict(X))
    with pytest.raises(ValueError, match="JSON"):
        cio.save(clf, tmp_path / "bad_meta.npz", metadata={"obj": object()})


def test_file_is_pickle_free_and_header_is_descriptive(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert all(name.endswith(".npy") for name in names)
    with np.load(path, allow_pickle=False) as data:
        for name in data.files:
            assert not data[name].dtype.hasobject, name  # loads without pickle
    header = _header(path)
    assert header["format"] == "convexnn-model"
    # written with the lowest version that describes it: version-1 readers still load it
    assert header["format_version"] == 1
    assert cio.FORMAT_VERSION == 3
    assert header["convexnn_version"] == "0.1.0"
    assert header["estimator"]["class"] == "ConvexMLPClassifier"
    assert header["checksum"]["algorithm"] == "sha256"
    assert len(header["checksum"]["value"]) == 64
    assert "coefs_" in header["estimator"]["attributes"]
    assert header["estimator"]["attributes"]["certificate_"]["type"] == "Certificate"


# --------------------------------------------------------------------------- refusals


def test_tampered_array_fails_checksum(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")
    key = _header(path)["estimator"]["attributes"]["coefs_"]["items"][0]["key"]

    def change(arrays):
        arrays[key] = arrays[key] + 1e-12

    _rewrite(path, change)
    with pytest.raises(ValueError, match="checksum mismatch"):
        cio.load(path)


def test_tampered_header_fails_checksum(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")

    def edit(header):
        header["estimator"]["params"]["alpha"] = {"type": "json", "value": 123.0}

    _edit_header(path, edit, resign=False)
    with pytest.raises(ValueError, match="checksum mismatch"):
        cio.load(path)


def test_extra_array_fails_checksum(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")
    _rewrite(path, lambda arrays: arrays.update(extra=np.zeros(3)))
    with pytest.raises(ValueError, match="checksum mismatch"):
        cio.load(path)


def test_newer_format_version_is_refused(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")
    _edit_header(path, lambda h: h.update(format_version=cio.FORMAT_VERSION + 1), resign=True)
    with pytest.raises(ValueError) as excinfo:
        cio.load(path)
    assert str(excinfo.value) == (
        f"file written by convexnn format version {cio.FORMAT_VERSION + 1}; this convexnn "
        f"reads up to {cio.FORMAT_VERSION}; upgrade convexnn"
    )


def test_unknown_format_name_is_refused(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")
    _edit_header(path, lambda h: h.update(format="something-else"), resign=True)
    with pytest.raises(ValueError, match="not a convexnn model file"):
        cio.load(path)


@pytest.mark.parametrize("class_name", ["LogisticRegression", "os.system", "Pipeline", ""])
def test_unknown_estimator_class_is_refused(binary_classifier, tmp_path, class_name):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")

    def edit(header):
        header["estimator"]["class"] = class_name

    _edit_header(path, edit, resign=True)  # valid checksum: the registry must refuse it
    with pytest.raises(ValueError, match="unknown estimator class"):
        cio.load(path)


def test_unknown_parameter_is_refused(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")

    def edit(header):
        header["estimator"]["params"]["no_such_param"] = {"type": "json", "value": 1}

    _edit_header(path, edit, resign=True)
    with pytest.raises(ValueError, match="no_such_param"):
        cio.load(path)


def test_pickled_or_foreign_files_are_refused(tmp_path):
    obj_path = tmp_path / "objects.npz"
    with open(obj_path, "wb") as fh:
        np.savez(fh, __header__=np.zeros(2, np.uint8), evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled"):
        cio.load(obj_path)

    pickle_path = tmp_path / "model.pkl"
    pickle_path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a convexnn model file"):
        cio.load(pickle_path)

    npy_path = tmp_path / "array.npy"
    np.save(npy_path, np.arange(3))
    with pytest.raises(ValueError, match="not a convexnn model file"):
        cio.load(npy_path)

    plain_npz = tmp_path / "plain.npz"
    np.savez(plain_npz, a=np.arange(3))
    with pytest.raises(ValueError, match="not a convexnn model file"):
        cio.load(plain_npz)

    with pytest.raises(FileNotFoundError):
        cio.load(tmp_path / "missing.npz")


def test_object_parameter_cannot_be_saved(tmp_path):
    est = ConvexMLPClassifier(random_state=np.random.RandomState(0))
    with pytest.raises(ValueError, match=r"random_state.*cannot be saved.*int seed"):
        cio.save(est, tmp_path / "obj.npz")
    assert not (tmp_path / "obj.npz").exists()

    est = ConvexMLPClassifier(sampler=object())
    with pytest.raises(ValueError, match=r"'sampler'.*cannot be saved.*numpy array"):
        cio.save(est, tmp_path / "obj.npz")


def test_unsupported_models_are_refused(fitted_pipeline, tmp_path):
    pipe, X = fitted_pipeline
    with pytest.raises(ValueError, match="supports"):
        cio.save(LogisticRegression(), tmp_path / "lr.npz")

    class MyClassifier(ConvexMLPClassifier):
        pass

    with pytest.raises(ValueError, match="supports"):
        cio.save(MyClassifier(), tmp_path / "sub.npz")
    with pytest.raises(ValueError, match="Pipeline of"):
        cio.save(make_pipeline(MinMaxScaler(), ConvexMLPRegressor()), tmp_path / "p.npz")
    with pytest.raises(ValueError, match="Pipeline of"):
        cio.save(make_pipeline(StandardScaler(), LogisticRegression()), tmp_path / "p.npz")
    with pytest.raises(ValueError, match="Pipeline of"):
        cio.save(Pipeline([("est", pipe[-1])]), tmp_path / "p.npz")
    assert list(tmp_path.iterdir()) == []


def test_object_arrays_are_converted_or_refused(tmp_path):
    gates = np.array([[1, "a"]], dtype=object)  # mixed types cannot be stored safely
    with pytest.raises(ValueError, match="object array"):
        cio.save(ConvexMLPRegressor(sampler=gates), tmp_path / "mixed.npz")
    ints = np.array([[1, 2], [3, 4]], dtype=object)
    loaded = cio.load(cio.save(ConvexMLPRegressor(sampler=ints), tmp_path / "ints.npz"))
    assert loaded.sampler.dtype == object
    assert loaded.sampler.tolist() == [[1, 2], [3, 4]]


# --------------------------------------------------------------------------- every estimator


def _small_params(est) -> dict:
    """Parameters that keep a fit small, for whichever of them ``est`` has."""
    small = {"n_patterns": 8, "max_iter": 300, "n_alphas": 3, "cv": 2, "random_state": 0}
    names = est.get_params(deep=False)
    return {k: v for k, v in small.items() if k in names}


def _estimator_names() -> list[str]:
    import convexnn.estimators

    return list(convexnn.estimators.__all__)


@pytest.mark.parametrize("name", _estimator_names())
def test_every_estimator_in_the_package_round_trips(name, tmp_path):
    import convexnn.estimators

    cls = getattr(convexnn.estimators, name)
    rng = np.random.default_rng(5)
    X = rng.uniform(-2, 2, size=(40, 1))  # one feature: every estimator accepts it
    est = cls()
    est.set_params(**_small_params(est))
    y = np.sin(2 * X[:, 0])
    if is_classifier(est):
        y = np.where(y > 0, "up", "down")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is not under test
        est.fit(X, y)
    path = cio.save(est, tmp_path / f"{name}.npz")
    loaded = cio.load(path)
    _assert_same_estimator(est, loaded)
    _assert_same_predictions(est, loaded, X)


class _NewRegressor(ConvexMLPRegressor):
    """Stands for an estimator class added to convexnn.estimators later."""


def test_a_new_estimator_class_round_trips_without_editing_io(monkeypatch, tmp_path):
    import convexnn.estimators

    est = _NewRegressor("gated_relu", n_patterns=N_PATTERNS, max_iter=MAX_ITER, random_state=0)
    with pytest.raises(ValueError, match="supports"):  # not (yet) in the package
        cio.save(est, tmp_path / "new.npz")
    monkeypatch.setattr(convexnn.estimators, "_NewRegressor", _NewRegressor, raising=False)
    monkeypatch.setattr(
        convexnn.estimators, "__all__", [*convexnn.estimators.__all__, "_NewRegressor"]
    )
    X, score = _make_data(seed=6)
    est.fit(X, score)
    loaded = cio.load(cio.save(est, tmp_path / "new.npz"))
    assert type(loaded) is _NewRegressor
    _assert_same_estimator(est, loaded)
    _assert_same_predictions(est, loaded, X)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, 7]),  # int64
        np.array([-1.0, 2.0]),  # float64 (integral: scikit-learn refuses continuous labels)
        np.array([False, True]),  # bool
        np.array(["b", "a"]),  # unicode
        np.array(["x", "yy", "zzz"], dtype=object),  # object strings, three classes
        np.array([10, 20, 30], dtype=np.int8),
    ],
    ids=["int", "float", "bool", "str", "object", "int8"],
)
def test_classes_of_any_label_type_round_trip(labels, tmp_path):
    X, score = _make_data(n_samples=60, seed=7)
    codes = np.digitize(score, np.quantile(score, np.linspace(0, 1, len(labels) + 1)[1:-1]))
    y = labels[codes]
    clf = ConvexMLPClassifier("gated_relu", n_patterns=N_PATTERNS, max_iter=MAX_ITER,
                              random_state=0).fit(X, y)
    loaded = cio.load(cio.save(clf, tmp_path / "labels.npz"))
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert loaded.classes_.tolist() == clf.classes_.tolist()
    _assert_same_estimator(clf, loaded)
    _assert_same_predictions(clf, loaded, X)
    assert loaded.predict(X).dtype == clf.predict(X).dtype


@pytest.mark.parametrize("class_weight", [{0: 1.0, 1: 5.0}, {"no": 2.0}, "balanced", None])
def test_class_weight_parameter_round_trips(class_weight, tmp_path):
    clf = ConvexMLPClassifier(class_weight=class_weight)
    loaded = cio.load(cio.save(clf, tmp_path / "cw.npz"))
    assert loaded.class_weight == class_weight
    if isinstance(class_weight, dict):
        assert [type(k) for k in loaded.class_weight] == [type(k) for k in class_weight]


def test_history_certificate_and_feature_names_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    X, score = _make_data(seed=8)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    reg = ConvexMLPRegressor("gated_relu", n_patterns=N_PATTERNS, random_state=0).fit(df, score)
    loaded = cio.load(cio.save(reg, tmp_path / "reg.npz"))
    assert loaded.history_ == reg.history_ and len(loaded.history_["primal"]) >= 1
    assert loaded.certificate_ == reg.certificate_
    assert loaded.feature_names_in_.tolist() == ["a", "b", "c"]
    assert loaded.loss_curve_ == reg.loss_curve_


def test_dict_of_arrays_and_nested_values_keep_their_types(tmp_path):
    X, score = _make_data(seed=9)
    reg = ConvexMLPRegressor("gated_relu", n_patterns=N_PATTERNS, max_iter=MAX_ITER,
                             random_state=0).fit(X, score)
    # what a cross-validated estimator stores: a dict of arrays of several dtypes
    reg.cv_results_ = {
        "alphas": np.array([1.0, 0.1, 0.01]),
        "rank": np.array([3, 1, 2], dtype=np.int32),
        "split/0": np.array([0.5, 0.7, 0.6], dtype=np.float32),
        "best": np.float64(0.7),
        "names": ["a", "b"],
    }
    reg.inner_estimator_ = ConvexMLPRegressor(alpha=0.5)
    reg.history_list_ = [np.arange(3), 1.5]  # a mixed sequence
    path = cio.save(reg, tmp_path / "cv.npz")
    assert _header(path)["format_version"] == 2  # needs the newer format
    loaded = cio.load(path)
    _assert_same_estimator(reg, loaded)
    assert loaded.cv_results_["rank"].dtype == np.int32
    assert type(loaded.inner_estimator_) is ConvexMLPRegressor
    assert loaded.inner_estimator_.alpha == 0.5


def test_arrays_from_torch_are_saved_as_float64_numpy(tmp_path):
    torch = pytest.importorskip("torch")
    X, score = _make_data(seed=10)
    reg = ConvexMLPRegressor("gated_relu", n_patterns=N_PATTERNS, max_iter=MAX_ITER,
                             random_state=0).fit(X, score)
    expected = reg.predict(X)
    # as a GPU fit would leave them: framework tensors, float32, one tracking gradients
    W1 = torch.tensor(reg.coefs_[0], dtype=torch.float32, requires_grad=True)
    reg.coefs_ = [W1, torch.tensor(reg.coefs_[1], dtype=torch.float32)]
    loaded = cio.load(cio.save(reg, tmp_path / "gpu.npz"))
    assert all(isinstance(w, np.ndarray) and w.dtype == np.float64 for w in loaded.coefs_)
    np.testing.assert_array_equal(loaded.coefs_[0], W1.detach().double().numpy())
    np.testing.assert_allclose(loaded.predict(X), expected, rtol=1e-5, atol=1e-5)


def test_unknown_value_class_is_refused(binary_classifier, tmp_path):
    clf, _ = binary_classifier
    path = cio.save(clf, tmp_path / "clf.npz")

    def edit(header):
        header["estimator"]["attributes"]["certificate_"] = {
            "type": "dataclass", "class": "os:system", "fields": {}
        }

    _edit_header(path, edit, resign=True)
    with pytest.raises(ValueError, match="unknown value class 'os:system'"):
        cio.load(path)


# --------------------------------------------------------------------------- ONNX


def _onnx_run(path, X):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["X"]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X})))


@pytest.fixture(scope="module")
def onnx_ready():
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")


def test_onnx_regressor_matches_predict(onnx_ready, tmp_path):
    X, score = _make_data(seed=11)
    Y = np.column_stack([score, np.sin(X[:, 0])])
    for y in (score, Y):
        reg = ConvexMLPRegressor("relu", n_patterns=N_PATTERNS, max_iter=MAX_ITER,
                                 random_state=0).fit(X, y)
        out = _onnx_run(reg.to_onnx(tmp_path / "reg.onnx", dynamo=False), X)
        assert list(out) == ["predictions"]
        assert out["predictions"].shape == reg.predict(X).shape
        np.testing.assert_allclose(out["predictions"], reg.predict(X), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["predictions"], reg.predict(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fixture", ["binary_classifier", "multiclass_classifier"])
def test_onnx_classifier_matches_decision_function_and_proba(onnx_ready, fixture, request,
                                                             tmp_path):
    clf, X = request.getfixturevalue(fixture)
    out = _onnx_run(clf.to_onnx(tmp_path / "clf.onnx", dynamo=False), X)
    assert list(out) == ["decision_function", "probabilities"]
    np.testing.assert_allclose(out["decision_function"], clf.decision_function(X),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X), rtol=1e-5, atol=1e-5)
    labels = clf.classes_[np.argmax(out["probabilities"], axis=1)]
    assert labels.tolist() == clf.predict(X).tolist()
    # any number of rows, including one
    one = _onnx_run(tmp_path / "clf.onnx", X[:1])
    np.testing.assert_allclose(one["decision_function"], clf.decision_function(X[:1]),
                               rtol=1e-12, atol=1e-12)


def test_onnx_float32_and_pipeline_with_scaler(onnx_ready, fitted_pipeline, tmp_path):
    from convexnn.export.onnx import to_onnx

    pipe, X = fitted_pipeline
    out = _onnx_run(to_onnx(pipe, tmp_path / "pipe.onnx", dynamo=False), X)  # raw features
    np.testing.assert_allclose(out["predictions"], pipe.predict(X), rtol=1e-12, atol=1e-12)
    out32 = _onnx_run(to_onnx(pipe, tmp_path / "pipe32.onnx", dtype="float32", dynamo=False),
                      X.astype(np.float32))
    assert out32["predictions"].dtype == np.float32
    np.testing.assert_allclose(out32["predictions"], pipe.predict(X), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="dtype"):
        to_onnx(pipe, tmp_path / "x.onnx", dtype="float16")
    with pytest.raises(ValueError, match="Pipeline of"):
        to_onnx(make_pipeline(MinMaxScaler(), pipe[-1]), tmp_path / "x.onnx")
    with pytest.raises(sklearn_not_fitted()):
        ConvexMLPRegressor().to_onnx(tmp_path / "x.onnx")


def sklearn_not_fitted():
    from sklearn.exceptions import NotFittedError

    return NotFittedError


@pytest.mark.slow
def test_onnx_default_exporter_gated_classifier(onnx_ready, multiclass_classifier, tmp_path):
    pytest.importorskip("onnxscript")
    clf, X = multiclass_classifier
    path = clf.to_onnx(tmp_path / "dynamo.onnx")  # torch.export-based exporter (default)
    out = _onnx_run(path, X)
    np.testing.assert_allclose(out["decision_function"], clf.decision_function(X),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], clf.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_npz_export_is_the_network(fitted_pipeline, binary_classifier, tmp_path):
    from convexnn.export import save_npz

    pipe, X = fitted_pipeline
    with np.load(save_npz(pipe, tmp_path / "net.npz"), allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    assert str(a["activation"]) == "relu" and str(a["output"]) == "predict"
    H = (X - a["scaler_mean"]) / a["scaler_scale"]
    f = np.maximum(H @ a["W1"] + a["b1"], 0) @ a["W2"] + a["b2"]
    np.testing.assert_allclose(f[:, 0], pipe.predict(X), rtol=1e-12, atol=1e-12)

    clf, X = binary_classifier
    with np.load(save_npz(clf, tmp_path / "clf.npz"), allow_pickle=False) as z:
        assert z["classes"].tolist() == ["no", "yes"]
        assert str(z["output"]) == "decision_function"
        assert "scaler_mean" not in z.files


@pytest.mark.slow
def test_torch_export_program_matches(binary_classifier, tmp_path):
    torch = pytest.importorskip("torch")
    from convexnn.export import save_torch

    clf, X = binary_classifier
    program = torch.export.load(str(save_torch(clf, tmp_path / "clf.pt2")))
    scores, proba = program.module()(torch.as_tensor(X))
    np.testing.assert_allclose(scores.detach().numpy(), clf.decision_function(X), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(proba.detach().numpy(), clf.predict_proba(X), rtol=1e-12,
                               atol=1e-12)
