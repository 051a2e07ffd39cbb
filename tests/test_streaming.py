"""Data streamed from a memory-mapped ``.npy`` (issue 6, requirement 2).

A fit on ``np.load(path, mmap_mode="r")`` must be the in-memory fit (same gates, same
solution, same certificate) while never copying ``X`` into anonymous memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor
from convexnn import data as data_module
from convexnn import operators, patterns
from convexnn.data import AugmentedData, as_streamable, check_streamable, is_memmap, to_npy
from convexnn.operators import ConeOperator, GatedOperator
from convexnn.patterns import augment

RTOL = 1e-10


def _save(tmp_path, name, X, **kw):
    path = tmp_path / f"{name}.npy"
    np.save(path, X)
    return np.load(path, mmap_mode="r", **kw)


def _data(n=1500, d=4, seed=0, classes=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.normal(size=n)
    if classes is not None:
        y = np.digitize(y, np.quantile(y, np.linspace(0, 1, classes + 1)[1:-1]))
    return X, y


@pytest.fixture
def small_chunks(monkeypatch):
    """512-row chunks everywhere, so that n = 1500 spans three of them (and the last
    one is not a short tail): the streamed path really reads the map chunk by chunk."""
    monkeypatch.setattr(patterns, "_CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(operators, "_CHUNK_ELEMENTS", 10_000)  # ~600-1100 rows


@pytest.fixture
def no_dense(monkeypatch):
    """Fail if anything asks a streamed ``AugmentedData`` for the whole ``Xa`` in RAM, and
    record which data objects were built (to prove the fit did stream)."""
    built = []
    dense, init = AugmentedData.dense, AugmentedData.__init__

    def guarded_dense(self):
        if self.streamed:
            raise AssertionError("a streamed fit asked for the whole Xa in memory")
        return dense(self)

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(AugmentedData, "dense", guarded_dense)
    monkeypatch.setattr(AugmentedData, "__init__", recording_init)
    return built


def _assert_same_fit(a, b):
    np.testing.assert_array_equal(a.gates_, b.gates_)
    np.testing.assert_array_equal(a.neuron_patterns_, b.neuron_patterns_)
    np.testing.assert_allclose(a.convex_coef_, b.convex_coef_, rtol=RTOL, atol=1e-14)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=RTOL, atol=1e-14)
    assert a.n_iter_ == b.n_iter_
    ka, kb = a.certificate_, b.certificate_
    for name in ("primal", "dual", "gap"):
        assert getattr(ka, name) == pytest.approx(getattr(kb, name), rel=RTOL, abs=1e-15), name
    assert ka.scope == kb.scope and ka.converged == kb.converged


# --------------------------------------------------------------------- the fit is the same


@pytest.mark.parametrize(
    "make, classes, activation",
    [
        (ConvexMLPRegressor, None, "gated_relu"),
        (ConvexMLPRegressor, None, "relu"),
        (ConvexMLPClassifier, 2, "gated_relu"),
        (ConvexMLPClassifier, 3, "relu"),
    ],
)
def test_memmap_fit_equals_in_memory_fit(tmp_path, small_chunks, no_dense, make, classes, activation):
    X, y = _data(classes=classes)
    Xm = _save(tmp_path, "X", X)
    kw = dict(activation=activation, solver="fista", alpha=1e-2, n_patterns=12,
              tol=1e-4 if activation == "relu" else 1e-5, max_iter=400, random_state=0)
    a = make(**kw).fit(X, y)
    n_in_memory = len(no_dense)
    b = make(**kw).fit(Xm, y)
    streamed = [d.streamed for d in no_dense[n_in_memory:]]
    assert streamed and all(streamed), "the memory-mapped fit did not stream its data"
    assert not any(d.streamed for d in no_dense[:n_in_memory])
    _assert_same_fit(a, b)
    assert a.certificate_.relative_gap < 1e-2  # a real fit, not a trivial one
    assert a.n_neurons_ > 0
    np.testing.assert_array_equal(a.predict(Xm), a.predict(X))


def test_memmap_with_zero_weights_equals_in_memory_fit(tmp_path, small_chunks, no_dense):
    """Zero-weight rows are dropped into a temporary memory map, not an in-memory copy."""
    X, y = _data(seed=1)
    sw = np.ones(len(y))
    sw[::3] = 0.0
    Xm = _save(tmp_path, "X", X)
    kw = dict(activation="relu", solver="fista", alpha=1e-2, n_patterns=10, tol=1e-5,
              max_iter=200, random_state=0)
    a = ConvexMLPRegressor(**kw).fit(X, y, sample_weight=sw)
    b = ConvexMLPRegressor(**kw).fit(Xm, y, sample_weight=sw)
    assert any(d.streamed and d.n_samples == int((sw > 0).sum()) for d in no_dense)
    _assert_same_fit(a, b)
    # the temporary file is gone (unlinked while mapped), the data's folder is clean
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy"]


@pytest.mark.parametrize("kind", ["float32", "fortran"])
def test_unstreamable_memmap_is_converted_on_disk(tmp_path, small_chunks, kind):
    """A float32 or Fortran-ordered map is converted chunk by chunk into a float64
    temporary file, and the fit equals the in-memory fit on the same float64 values."""
    X, y = _data(seed=2)
    if kind == "float32":
        X = X.astype(np.float32)
        Xm = _save(tmp_path, "X", X)
    else:
        Xm = _save(tmp_path, "X", np.asfortranarray(X))
        assert Xm.flags.f_contiguous and not Xm.flags.c_contiguous
    with pytest.raises(ValueError, match="to_npy"):
        check_streamable(Xm)
    with pytest.raises(ValueError, match="memory-mapped"):
        AugmentedData(Xm)
    converted = as_streamable(Xm)
    assert is_memmap(converted) and converted.dtype == np.float64 and converted.flags.c_contiguous
    np.testing.assert_array_equal(converted, np.asarray(X, dtype=np.float64))
    kw = dict(activation="gated_relu", solver="fista", alpha=1e-2, n_patterns=10, tol=1e-5,
              max_iter=300, random_state=0)
    a = ConvexMLPRegressor(**kw).fit(np.asarray(X, dtype=np.float64), y)
    b = ConvexMLPRegressor(**kw).fit(Xm, y)
    _assert_same_fit(a, b)


def test_in_memory_and_plain_arrays_are_not_streamed(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 3))
    assert not is_memmap(X) and as_streamable(X) is X
    Xm = _save(tmp_path, "X", X)
    assert is_memmap(Xm) and is_memmap(np.asarray(Xm)) and is_memmap(Xm[2:5])
    assert not is_memmap(np.array(Xm))  # a copy is no map
    assert as_streamable(Xm) is Xm
    assert AugmentedData(Xm).streamed and not AugmentedData(X).streamed
    assert not AugmentedData(Xm, stream=False).streamed


def test_to_npy_rows_and_conversion(tmp_path):
    X = np.arange(24, dtype=np.int32).reshape(8, 3)
    out = to_npy(X, tmp_path / "a.npy", rows=np.array([True, False] * 4))
    np.testing.assert_array_equal(out, X[::2].astype(float))
    assert out.dtype == np.float64 and not out.flags.writeable
    out = to_npy(X, tmp_path / "b.npy", rows=np.array([7, 1]))
    np.testing.assert_array_equal(out, X[[7, 1]].astype(float))


# -------------------------------------------------------------- the products are the same


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs"])
def test_streamed_operators_equal_in_memory(tmp_path, small_chunks, activation):
    """Every product of the gated and cone operators and the cone projector gives the
    same numbers from a memory map as from RAM, without building ``Xa``."""
    n, d, P, c = 1500, 4, 6, 2
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, d))
    gates = rng.normal(size=(d + 1, P))
    mem, streamed = GatedOperator(X, gates), GatedOperator(_save(tmp_path, "X", X), gates)
    assert streamed.streamed and streamed.data._Xa is None
    np.testing.assert_array_equal(streamed.masks, mem.masks)
    V = rng.normal(size=(P, d + 1, c))
    Theta = rng.normal(size=(n, c))
    G = rng.normal(size=(P, d + 1))
    for f in (lambda op: op.matvec(V), lambda op: op.rmatvec(Theta), lambda op: op.block_images(G),
              lambda op: op.norm_squared(np.full(n, 1 / n))):
        np.testing.assert_allclose(f(streamed), f(mem), rtol=1e-13, atol=1e-13)
    cm, cs = ConeOperator(mem, activation, 0.2), ConeOperator(streamed, activation, 0.2)
    U = rng.normal(size=(2 * P, d + 1, c))
    Lam = rng.uniform(size=(n, 2 * P, c))
    for f in (lambda op: op.matvec(U), lambda op: op.rmatvec(Theta), lambda op: op.preactivations(U),
              lambda op: op.cone_extremes(U), lambda op: op.adjoint_combined(Theta, Lam),
              lambda op: op.cone_matrix(P + 1)):
        np.testing.assert_allclose(f(cs), f(cm), rtol=1e-13, atol=1e-13)
    # the exact cone projections (active-set rounds and the chunked most-violated row)
    from convexnn.cones import ConeProjector

    W = rng.normal(size=(40, d + 1))
    cones = rng.integers(0, P, size=40)
    pm = ConeProjector(mem.data, cm.gated_signs).project(W, cones)
    ps = ConeProjector(streamed.data, cs.gated_signs).project(W, cones)
    np.testing.assert_allclose(ps, pm, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(pm, ConeProjector(augment(X), cm.gated_signs).project(W, cones),
                               rtol=1e-13, atol=1e-13)
    assert streamed.data._Xa is None  # none of that built Xa
    fb = ConeProjector(streamed.data, cs.gated_signs)
    np.testing.assert_array_equal(fb._cone_matrix(2), cm.cone_matrix(2))
    assert streamed.data._Xa is None


def test_chunked_column_std_equals_numpy(monkeypatch):
    X = np.random.default_rng(0).normal(3.0, 2.0, size=(2000, 5))
    np.testing.assert_array_equal(patterns._column_std(X), X.std(axis=0))  # one chunk: bitwise
    monkeypatch.setattr(patterns, "_CHUNK_ELEMENTS", 1)  # four 512-row chunks
    np.testing.assert_allclose(patterns._column_std(X), X.std(axis=0), rtol=1e-13)


# --------------------------------------------------------------- no copy of X in memory

_CHILD = textwrap.dedent(
    """
    import json, sys, tracemalloc, warnings
    import numpy as np
    from convexnn import ConvexMLPRegressor, operators, patterns

    # ~8 MB chunk temporaries (default ~32 MB): well below the 80 MB of X, so that a
    # copy of X stands out against the chunks however many are alive at once
    patterns._CHUNK_ELEMENTS = operators._CHUNK_ELEMENTS = 1_000_000
    X = np.load(sys.argv[1], mmap_mode="r")
    y = np.random.default_rng(0).normal(size=X.shape[0])
    out = {}
    tracemalloc.start()
    copy = np.array(X)  # the control: the measurement must see an in-memory copy
    out["control_copy"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del copy
    for activation in sys.argv[2].split(","):
        est = ConvexMLPRegressor(activation=activation, solver="fista", alpha=1e-2, n_patterns=8,
                                 max_iter=3, random_state=0)
        tracemalloc.start()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 3 iterations do not converge
            est.fit(X, y)
        out[activation] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(json.dumps(out))
    """
)


def test_memmap_fit_makes_no_copy_of_X(tmp_path):
    """Fits streamed from an 80 MB ``.npy`` (100000 x 100 float64) allocate far less than
    ``X`` in traced (numpy, anonymous) memory: no copy of ``X`` or ``Xa`` is made.

    The bound, 40 % of ``X``'s bytes, holds the masks (``n P`` bytes), a few ``n``-vectors
    and a few chunk temporaries (~8 MB each in the child). The old code path (``Xa = [X,
    1]`` built in RAM) peaks above ``X``'s size, and so does the control, one in-memory
    copy of the map, which shows that tracemalloc sees numpy's buffers. The gated and
    the ReLU program are fitted (their data paths differ: the cone projections);
    classifiers share them (see ``test_memmap_fit_equals_in_memory_fit``).
    """
    n, d = 100_000, 100
    path = tmp_path / "big.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    rng = np.random.default_rng(0)
    for start in range(0, n, 10_000):
        X[start:start + 10_000] = rng.normal(size=(10_000, d))
    X.flush()
    del X
    size = 8 * n * d
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), "gated_relu,relu"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert peaks["control_copy"] >= size
    for activation in ("gated_relu", "relu"):
        peak = peaks[activation]
        assert peak < 0.4 * size, f"{activation}: {peak / 2**20:.1f} MiB traced, X is {size / 2**20:.0f} MiB"
