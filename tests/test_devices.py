"""The torch backend (``device=``): same programs, same solvers, float64 certificates.

No GPU on CI: ``device="cpu"`` runs the torch code path on the CPU (the one a GPU runs,
with float32 if asked), and the GPU tests at the bottom skip without CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402

from convexnn import (  # noqa: E402
    ConvexMLPClassifier,
    ConvexMLPClassifierCV,
    ConvexMLPRegressor,
    ConvexMLPRegressorCV,
)
from convexnn.certificates import certify  # noqa: E402
from convexnn.devices import TorchGatedOperator, check_device, resolve_dtype  # noqa: E402
from convexnn.operators import ConeOperator, GatedOperator  # noqa: E402
from convexnn.patterns import Patterns, make_sampler  # noqa: E402

CUDA = torch.cuda.is_available()


def _data(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    return X, y


def _gates(X, P=40, seed=0):
    return make_sampler("data", P).sample(X, seed).gates


# -- argument checking -------------------------------------------------------------
@pytest.mark.parametrize("device", ["gpu", "cuda0", "CPU", "cuda:x", 3, ""])
def test_bad_device_names_are_rejected(device):
    with pytest.raises(ValueError, match="device must be None"):
        check_device(device)


@pytest.mark.skipif(CUDA, reason="checks the error raised without a GPU")
def test_cuda_without_gpu_is_a_clear_error_before_any_work():
    X, y = _data(50)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        ConvexMLPRegressor("gated_relu", device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        check_device("cuda:1")


def test_dtype_is_checked():
    assert resolve_dtype("cpu", None) == "float64"
    assert resolve_dtype("cuda", None) == "float32"
    assert resolve_dtype("cpu", "float32") == "float32"
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("cpu", "float16")
    X, y = _data(50)
    with pytest.raises(ValueError, match="dtype"):
        ConvexMLPRegressor("gated_relu", device="cpu", dtype="half").fit(X, y)


# -- the operator ------------------------------------------------------------------
@pytest.mark.parametrize("c", [1, 3])
# 40 patterns > d + 1 = 7, and 4 < 7: the two product orders of several outputs
@pytest.mark.parametrize("P", [40, 4])
def test_float64_products_equal_numpy(c, P):
    X, _ = _data(700)
    G = _gates(X, P)
    host, dev = GatedOperator(X, G), TorchGatedOperator(X, G, "cpu", "float64")
    np.testing.assert_array_equal(dev.masks, host.masks)  # the same patterns
    rng = np.random.default_rng(1)
    V = rng.standard_normal((host.n_patterns, host.n_inputs, c))
    Theta = rng.standard_normal((host.n_samples, c))
    np.testing.assert_allclose(dev.matvec(V), host.matvec(V), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dev.rmatvec(Theta), host.rmatvec(Theta), rtol=1e-12, atol=1e-11)
    assert dev.eps == np.finfo(np.float64).eps


def test_float32_products_and_exact_block():
    X, _ = _data(700)
    G = _gates(X)
    host, dev = GatedOperator(X, G), TorchGatedOperator(X, G, "cpu", "float32")
    rng = np.random.default_rng(2)
    V = rng.standard_normal((host.n_patterns, host.n_inputs, 2))
    Theta = rng.standard_normal((host.n_samples, 2))
    ref_f, ref_a = host.matvec(V), host.rmatvec(Theta)
    err_f = np.abs(dev.matvec(V) - ref_f).max() / np.abs(ref_f).max()
    err_a = np.abs(dev.rmatvec(Theta) - ref_a).max() / np.abs(ref_a).max()
    assert 1e-10 < err_f < 1e-5 and 1e-10 < err_a < 1e-5  # float32: inexact, but close
    assert dev.eps == np.finfo(np.float32).eps
    with dev.exact_products():  # the certificate's products are float64
        np.testing.assert_allclose(dev.matvec(V), ref_f, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dev.rmatvec(Theta), ref_a, rtol=1e-12, atol=1e-11)
    assert np.abs(dev.matvec(V) - ref_f).max() > 1e-10  # back to float32 after the block
    assert dev.promote() and not dev.promote()  # promotes once
    np.testing.assert_allclose(dev.matvec(V), ref_f, rtol=1e-12, atol=1e-12)


def test_cone_operator_delegates_precision():
    X, _ = _data(300)
    dev = TorchGatedOperator(X, _gates(X), "cpu", "float32")
    cone = ConeOperator(dev, "leaky_relu", 0.1)
    host = ConeOperator(GatedOperator(X, _gates(X)), "leaky_relu", 0.1)
    U = np.random.default_rng(3).standard_normal((cone.n_blocks, cone.n_inputs, 1))
    assert cone.eps == dev.eps
    with cone.exact_products():
        np.testing.assert_allclose(cone.matvec(U), host.matvec(U), rtol=1e-12, atol=1e-12)


# -- estimators --------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_cpu_float64_fit_is_the_numpy_fit(activation):
    X, y = _data()
    kw = dict(solver="fista", tol=1e-5, n_patterns=30, random_state=0, max_iter=3000)
    ref = ConvexMLPRegressor(activation, **kw).fit(X, y)
    dev = ConvexMLPRegressor(activation, device="cpu", dtype="float64", **kw).fit(X, y)
    # torch sums in another order: the same trajectory up to rounding. Compare the
    # iterates' objectives over the first 200 iterations (they agree to ~1e-12 there);
    # later, rounding flips a restart decision now and then, and the iteration counts
    # then differ by ~10 % on some CPUs (920 vs 1030 for the ReLU fit on one of them)
    a, b = np.asarray(ref.loss_curve_), np.asarray(dev.loss_curve_)
    assert a.size >= 200 and b.size >= 200
    np.testing.assert_allclose(b[:200], a[:200], rtol=1e-10)
    c, r = dev.certificate_, ref.certificate_
    assert c.converged and r.converged
    assert abs(c.primal - r.primal) <= max(c.gap, r.gap)
    np.testing.assert_allclose(dev.predict(X), ref.predict(X), rtol=1e-3, atol=1e-3)


def _host_program(est, X, Y, w):
    """The estimator's program rebuilt with numpy float64 products (no torch)."""
    return clone(est).set_params(device=None)._program(X, Y, w, Patterns(est.gates_, complete=False))


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_float32_fit_is_certified_in_float64(activation, tol):
    """Float32 products: the fit reaches the float64 optimum within its certified gap,
    and its certificate is the float64 certificate of the network it returns."""
    X, y = _data()
    kw = dict(solver="fista", tol=tol, n_patterns=30, random_state=0, max_iter=20000)
    ref = ConvexMLPRegressor(activation, **kw).fit(X, y)
    est = ConvexMLPRegressor(activation, device="cpu", dtype="float32", **kw).fit(X, y)
    c, r = est.certificate_, ref.certificate_
    assert c.converged and r.converged
    # both within their certified gaps of the same optimum p*: r.dual <= p* <= c.primal
    assert c.dual <= r.primal + 1e-14 and r.dual <= c.primal + 1e-14
    assert abs(c.primal - r.primal) <= max(c.gap, r.gap)
    # the certificate is float64: recomputing it on a numpy program gives the same bound
    Y = y.reshape(-1, 1)
    w = np.full(len(y), 1.0 / len(y))
    program = _host_program(est, X, Y, w)
    coef = est.convex_coef_
    again = certify(program, coef, est.intercepts_[1], _dual_points(est, program),
                    activation=activation, tol=tol, refine=True)
    assert again.primal == pytest.approx(c.primal, rel=1e-12)


def _dual_points(est, program):
    from convexnn.certificates import dual_point_from_outputs

    return [dual_point_from_outputs(program, program.predict(est.convex_coef_, est.intercepts_[1]))]


def test_float32_promotes_to_float64_when_the_gap_stalls(monkeypatch):
    """A tolerance float32 cannot reach alone is still certified (the solve finishes in
    float64) instead of stalling at float32's resolution."""
    calls = []
    original = TorchGatedOperator.promote

    def spy(self):
        calls.append(True)
        return original(self)

    monkeypatch.setattr(TorchGatedOperator, "promote", spy)
    X, y = _data(600, seed=4)
    est = ConvexMLPRegressor("gated_relu", solver="fista", tol=1e-9, n_patterns=30,
                             random_state=0, max_iter=40000, device="cpu", dtype="float32")
    est.fit(X, y)
    assert est.certificate_.relative_gap <= 1e-9
    assert calls  # float32 alone stalled above 1e-9 and handed over to float64


@pytest.mark.parametrize("n_classes", [2, 4])
def test_classifier_on_device(n_classes):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 5))
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1] ** 2, np.quantile(X[:, 0], np.linspace(0, 1, n_classes + 1)[1:-1]))
    kw = dict(solver="fista", tol=1e-4, n_patterns=20, random_state=0, activation="gated_relu")
    ref = ConvexMLPClassifier(**kw).fit(X, y)
    est = ConvexMLPClassifier(device="cpu", dtype="float32", **kw).fit(X, y)
    assert est.certificate_.converged
    assert abs(est.certificate_.primal - ref.certificate_.primal) <= max(
        est.certificate_.gap, ref.certificate_.gap
    )
    assert (est.predict(X) == ref.predict(X)).mean() > 0.97


def test_barrier_and_cv_accept_a_device():
    X, y = _data(200)
    ref = ConvexMLPRegressor("gated_relu", solver="barrier", tol=1e-7, n_patterns=20, random_state=0).fit(X, y)
    est = ConvexMLPRegressor("gated_relu", solver="barrier", tol=1e-7, n_patterns=20, random_state=0,
                             device="cpu", dtype="float32").fit(X, y)
    assert est.certificate_.converged
    assert est.certificate_.primal == pytest.approx(ref.certificate_.primal, rel=2e-7)
    cv = ConvexMLPRegressorCV("gated_relu", n_alphas=3, cv=2, n_patterns=15, random_state=0,
                              device="cpu").fit(X, y)
    assert cv.get_params()["device"] == "cpu" and cv.certificate_.converged
    assert ConvexMLPClassifierCV(device="cpu").get_params()["dtype"] is None


# -- GPU (skipped without CUDA) ----------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_cuda_fit_agrees_with_cpu(activation):
    X, y = _data(2000)
    kw = dict(solver="fista", tol=1e-4, n_patterns=50, random_state=0)
    ref = ConvexMLPRegressor(activation, **kw).fit(X, y)
    est = ConvexMLPRegressor(activation, device="cuda", **kw).fit(X, y)
    assert est.certificate_.converged
    assert abs(est.certificate_.primal - ref.certificate_.primal) <= max(
        est.certificate_.gap, ref.certificate_.gap
    )
