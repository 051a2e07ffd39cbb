"""Saving and loading the issue-5 models: deep threshold networks, deep 1-D networks
(narrow chains and rectangular step blocks) and their network value objects.

Every model must come back from :func:`convexnn.io.save` / :func:`convexnn.io.load`
with identical predictions, identical fitted attributes, a network of the same class
with the same fields, and a ``to_torch()`` module that agrees with numpy.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

from convexnn import io as cio
from convexnn.deep1d import BlockNetwork, ChainNetwork
from convexnn.estimators import ConvexThresholdClassifier, ConvexThresholdRegressor, Deep1DRegressor
from convexnn.network import Network
from convexnn.threshold import DeepThresholdNetwork


def _data(n=10, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, -1]
    return X, y


def _x1d(seed=1):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, size=9))
    return x[:, None], np.sin(2 * x) + 0.3 * x


# name -> (estimator factory, data factory, expected network class)
CASES = {
    "threshold-two-layer": (
        lambda: ConvexThresholdRegressor(alpha=1e-2, n_patterns=30, random_state=0),
        lambda: _data(n=20), Network,
    ),
    "threshold-deep-closed-form": (
        lambda: ConvexThresholdRegressor(alpha=1e-2, hidden_layer_sizes=(9, 9, 12)),
        lambda: _data(), DeepThresholdNetwork,
    ),
    "threshold-deep-sampled": (
        lambda: ConvexThresholdRegressor(alpha=1e-2, hidden_layer_sizes=(9, 30), closed_form=False,
                                         n_patterns=40, random_state=0),
        lambda: _data(), DeepThresholdNetwork,
    ),
    "threshold-deep-classifier": (
        lambda: ConvexThresholdClassifier(alpha=1e-2, hidden_layer_sizes=(9, 30), n_patterns=40,
                                          random_state=0),
        lambda: (lambda X, y: (X, np.where(y > 0, "up", "down")))(*_data()), DeepThresholdNetwork,
    ),
    "deep1d-relu-4": (lambda: Deep1DRegressor(depth=4, alpha=1e-2), _x1d, ChainNetwork),
    "deep1d-leaky-2": (
        lambda: Deep1DRegressor(depth=2, activation="leaky_relu", negative_slope=0.2, alpha=1e-2),
        _x1d, ChainNetwork,
    ),
    "deep1d-threshold-2-interpolation": (
        lambda: Deep1DRegressor(depth=2, activation="threshold", alpha=0.0), _x1d, ChainNetwork,
    ),
    "deep1d-sign-rectangular-3": (
        lambda: Deep1DRegressor(depth=3, activation="sign", architecture="rectangular", width=2,
                                alpha=1e-2),
        _x1d, BlockNetwork,
    ),
    "deep1d-threshold-rectangular-5": (
        lambda: Deep1DRegressor(depth=5, activation="threshold", architecture="rectangular", width=3,
                                alpha=0.0),
        _x1d, BlockNetwork,
    ),
}


def _fit(name):
    make, data, _ = CASES[name]
    X, y = data()
    est = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is not under test
        est.fit(X, y)
    return est, X


def _assert_same_value(a, b, where):
    """Recursive equality of fitted values: arrays by dtype, shape and bytes,
    dataclasses field by field, containers item by item."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _assert_same_value(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same_value(u, v, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            _assert_same_value(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    elif hasattr(a, "get_params"):  # a nested estimator
        assert type(a) is type(b), where
    else:
        assert a == b, where


def _network_output(net, X):
    if isinstance(net, (ChainNetwork, BlockNetwork)):
        return net.forward(X[:, 0])
    return net.forward(X)


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimator_round_trips_with_identical_predictions(name, tmp_path):
    est, X = _fit(name)
    loaded = cio.load(cio.save(est, tmp_path / f"{name}.npz"))
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    public = {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}
    assert public and public <= set(vars(loaded))
    for k in sorted(public):
        _assert_same_value(getattr(est, k), getattr(loaded, k), k)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    X_new = X + 0.37  # off the training points too
    np.testing.assert_array_equal(loaded.predict(X_new), est.predict(X_new))
    net, net_loaded = est.to_network(), loaded.to_network()
    assert type(net_loaded) is type(net) is CASES[name][2]
    _assert_same_value(net, net_loaded, "to_network()")
    assert str(loaded.certificate_) == str(est.certificate_)


@pytest.mark.parametrize("name", sorted(CASES))
def test_network_value_object_round_trips_on_its_own(name, tmp_path):
    est, X = _fit(name)
    net = est.to_network()
    path = cio.save(net, tmp_path / "net.npz")
    header = json.loads(np.load(path)["__header__"].tobytes())
    assert header["kind"] == "network" and header["format_version"] == 3
    loaded = cio.load(path)
    assert type(loaded) is type(net)
    _assert_same_value(net, loaded, "network")
    for Z in (X, X - 0.21):
        np.testing.assert_array_equal(_network_output(loaded, Z), _network_output(net, Z))


@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_models_export_to_torch_like_numpy(name, tmp_path):
    torch = pytest.importorskip("torch")
    est, X = _fit(name)
    loaded = cio.load(cio.save(est, tmp_path / "m.npz"))
    net = cio.load(cio.save(est.to_network(), tmp_path / "n.npz"))
    Z = np.vstack([X, X + 0.37])
    expected = loaded.decision_function(Z) if hasattr(loaded, "classes_") else loaded.predict(Z)
    with torch.no_grad():
        from_estimator = loaded.to_torch()(torch.as_tensor(Z)).numpy()
        from_network = net.to_torch()(torch.as_tensor(Z)).numpy()
    np.testing.assert_allclose(np.ravel(from_estimator), np.ravel(expected), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.ravel(from_network), np.ravel(expected), rtol=1e-12, atol=1e-12)


def test_estimator_files_keep_their_older_format_version(tmp_path):
    est, _ = _fit("threshold-deep-closed-form")
    header = json.loads(np.load(cio.save(est, tmp_path / "m.npz"))["__header__"].tobytes())
    assert header["kind"] == "estimator" and header["format_version"] <= 2


def _resign(path, edit):
    """Rewrite ``path`` with ``edit(header)`` applied and a valid checksum."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays.pop("__header__").tobytes())
    edit(header)
    header.pop("checksum", None)
    header["checksum"] = {"algorithm": "sha256", "value": cio._checksum(arrays, header)}
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_network_file_naming_another_class_is_refused(tmp_path):
    est, _ = _fit("deep1d-relu-4")
    path = cio.save(est.network_, tmp_path / "n.npz")

    def rename(header):
        header["network"]["class"] = "convexnn.certificates:Certificate"

    _resign(path, rename)
    with pytest.raises(ValueError, match="network file must hold one of"):
        cio.load(path)


def test_network_file_is_refused_by_a_version_2_reader(tmp_path, monkeypatch):
    est, _ = _fit("deep1d-sign-rectangular-3")
    path = cio.save(est.network_, tmp_path / "n.npz")
    monkeypatch.setattr(cio, "FORMAT_VERSION", 2)
    with pytest.raises(ValueError, match="format version 3"):
        cio.load(path)


def test_objects_that_are_not_models_are_still_refused(tmp_path):
    est, _ = _fit("deep1d-relu-4")
    with pytest.raises(ValueError, match="supports"):
        cio.save(est.dictionary_, tmp_path / "d.npz")
    with pytest.raises(ValueError, match="supports"):
        cio.save(est.certificate_, tmp_path / "c.npz")
