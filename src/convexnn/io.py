"""Safe saving and loading of convexnn models.

A model file is a single NumPy ``.npz`` archive, read back with
``np.load(..., allow_pickle=False)``: loading a file never runs code from it.

Layout of the archive:

- ``__header__``: a UTF-8 JSON document stored as a ``uint8`` array. It holds the
  format name (``"convexnn-model"``), the format version, the convexnn version that
  wrote it, the estimator class name (looked up on load in an explicit registry of
  convexnn estimators, never imported by name), the constructor parameters, the
  fitted attributes, optional user metadata and a SHA-256 checksum.
- every array under its own key, e.g. ``estimator/attributes/coefs_/0``; the header
  refers to arrays by these keys.

The checksum covers every array (name, dtype, shape and bytes) and the header itself
(without the checksum field); :func:`load` refuses a file whose checksum does not match.

Supported objects are the convexnn estimators (every estimator class listed in
``convexnn.estimators.__all__``: a new estimator there is saved and loaded without any
change to this module), a scikit-learn :class:`~sklearn.pipeline.Pipeline` made of a
:class:`~sklearn.preprocessing.StandardScaler` followed by one convexnn estimator, and
the exported network value objects on their own (:class:`~convexnn.network.Network`,
:class:`~convexnn.threshold.DeepThresholdNetwork`, :class:`~convexnn.deep1d.ChainNetwork`,
:class:`~convexnn.deep1d.BlockNetwork`; header ``kind`` ``"network"``).

Values that can be stored: None, bools, numbers, strings, NumPy scalars and arrays
(object arrays of strings or numbers are converted), lists and tuples of those,
str-keyed dicts of those (arrays inside keep their dtype), convexnn estimators, and
dataclass instances defined in convexnn's own modules (``Certificate``, networks,
dictionaries...), stored field by field and rebuilt by calling the class found in the
already-imported convexnn module (never by importing a name read from the file).

Arrays that live on an accelerator or in another framework (a torch tensor, a CuPy
array...) are copied to host memory and stored as NumPy arrays, floating point ones
as float64, so a model fitted on a GPU loads on a CPU-only machine.

Format versions: 1 (dicts of plain JSON, ``Certificate`` only); 2 adds dicts holding
arrays, nested estimators and convexnn dataclasses; 3 adds files holding a bare network
(``kind = "network"``), which a version-2 reader would misread. A file is written with
the lowest version that can describe it, so models that version 1 could store stay
readable by older convexnn releases.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save"]

#: Name written in every header; a file with another name is not a convexnn model.
FORMAT_NAME = "convexnn-model"
#: Newest format version this convexnn writes and reads.
FORMAT_VERSION = 3
#: Format version of a file holding a bare network (``kind = "network"``).
_NETWORK_FORMAT_VERSION = 3

_HEADER_KEY = "__header__"


def _supported() -> str:
    names = ", ".join(sorted(_estimator_registry()))
    return (
        f"a fitted or unfitted convexnn estimator ({names}), or a scikit-learn Pipeline of "
        "a StandardScaler followed by one convexnn estimator"
    )

_JSON_SCALARS = (type(None), bool, int, float, str)


# --------------------------------------------------------------------------- registries


def _estimator_registry() -> dict[str, type]:
    """Estimator classes a file may name: every scikit-learn estimator class listed in
    ``convexnn.estimators.__all__`` (imported lazily: ``convexnn`` imports this module)."""
    import convexnn.estimators as estimators
    from sklearn.base import BaseEstimator

    registry = {}
    for name in getattr(estimators, "__all__", ()):
        obj = getattr(estimators, name, None)
        if isinstance(obj, type) and issubclass(obj, BaseEstimator) and obj.__name__ == name:
            registry[name] = obj
    return registry


def _network_registry() -> dict[str, type]:
    """Network value objects :func:`save` accepts on their own (``kind = "network"``):
    the dataclasses the estimators export (``to_network()``, ``network_``)."""
    from convexnn.deep1d import BlockNetwork, ChainNetwork
    from convexnn.network import Network
    from convexnn.threshold import DeepThresholdNetwork

    return {cls.__name__: cls for cls in (Network, DeepThresholdNetwork, ChainNetwork, BlockNetwork)}


def _value_registry() -> dict[str, tuple[type, Callable[[Any], dict], Callable[[dict], Any]]]:
    """Structured attribute types stored as JSON: name -> (class, to_dict, from_dict)."""
    from convexnn.certificates import Certificate

    return {"Certificate": (Certificate, lambda c: c.to_dict(), Certificate.from_dict)}


def _dataclass_name(cls: type) -> str | None:
    """``"module:qualname"`` of a dataclass defined in a convexnn module, else None."""
    module = getattr(cls, "__module__", "")
    if not (module == "convexnn" or module.startswith("convexnn.")):
        return None
    if not dataclasses.is_dataclass(cls) or "<locals>" in cls.__qualname__:
        return None
    return f"{module}:{cls.__qualname__}"


def _find_dataclass(name: Any) -> type | None:
    """The convexnn dataclass ``"module:qualname"`` names, looked up among modules that
    are already imported (nothing is imported); None if there is no such class."""
    if not isinstance(name, str) or name.count(":") != 1:
        return None
    module_name, qualname = name.split(":")
    if not (module_name == "convexnn" or module_name.startswith("convexnn.")):
        return None
    module = sys.modules.get(module_name)
    obj: Any = module
    for part in qualname.split("."):
        if obj is None or not part.isidentifier() or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and _dataclass_name(obj) == name:
        return obj
    return None


def _host_array(value: Any) -> np.ndarray | None:
    """A NumPy copy of an array from another framework or device (torch, CuPy, JAX...),
    floating point as float64; None if ``value`` is not such an array."""
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        return None
    module = type(value).__module__.split(".")[0]
    if module not in {"torch", "cupy", "jax", "jaxlib", "tensorflow"}:
        return None
    if hasattr(value, "detach"):  # torch: off the autograd graph, then to host memory
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.double()
        return np.array(value.numpy())
    if hasattr(value, "get") and module == "cupy":
        value = value.get()
    arr = np.asarray(value)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else np.array(arr)


# --------------------------------------------------------------------------- encoding


def _to_json(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON types (NumPy scalars become Python scalars).

    Raises
    ------
    TypeError
        If ``value`` holds anything other than None, bool, numbers, strings, lists,
        tuples and str-keyed dicts.
    """
    if isinstance(value, np.generic) and not isinstance(value, (np.void, np.object_)):
        value = value.item()
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v, what) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _to_json(v, what) for k, v in value.items()}
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return _to_json(value.tolist(), what)
    raise TypeError(f"{what} holds a {type(value).__name__} object")


def _safe_array(arr: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    """Return an array NumPy can store without pickle, and whether it was an object array.

    Object arrays are converted when all their elements are strings (to a unicode
    array), or all ints, all floats or all bools; anything else cannot be stored.
    """
    if not arr.dtype.hasobject:
        return arr, False
    if arr.dtype != object:
        raise ValueError(f"{what} is a structured array with object fields and cannot be saved")
    flat = [v.item() if isinstance(v, np.generic) else v for v in arr.ravel().tolist()]
    for kind in (str, bool, int, float):
        if all(type(v) is kind or (kind is str and isinstance(v, str)) for v in flat):
            dtype = {str: np.str_, bool: np.bool_, int: np.int64, float: np.float64}[kind]
            if kind is str and not flat:
                dtype = np.dtype("<U1")
            return np.array(flat, dtype=dtype).reshape(arr.shape), True
    kinds = sorted({type(v).__name__ for v in flat})
    raise ValueError(
        f"{what} is an object array holding {', '.join(kinds)} values; only object arrays "
        "whose elements are all strings, all ints, all floats or all bools can be saved"
    )


class _Writer:
    """Collects the arrays of a model file while its header is built."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        #: lowest format version that can describe what was encoded so far
        self.version = 1

    def add_array(self, key: str, arr: np.ndarray) -> None:
        if key in self.arrays or key == _HEADER_KEY:
            raise ValueError(f"duplicate array key {key!r}")
        self.arrays[key] = arr

    def encode(self, value: Any, key: str, what: str, *, objects: bool, hint: str) -> dict:
        """Encode one parameter or attribute value as a tagged JSON spec.

        Parameters
        ----------
        value : object
            The value to store.
        key : str
            Array key prefix for the value's arrays.
        what : str
            Human description for error messages, e.g. ``"parameter 'sampler'"``.
        objects : bool
            Whether structured values (certificates, convexnn dataclasses, nested
            estimators, arrays from other frameworks) are allowed.
        hint : str
            What to pass instead, appended to the error for unsupported objects.
        """
        if objects:
            host = _host_array(value)
            if host is not None:
                value = host
        if isinstance(value, np.generic) and not isinstance(value, (np.void, np.object_)):
            # NumPy scalar: a 0-d array keeps its exact dtype.
            self.add_array(key, np.asarray(value))
            return {"type": "scalar", "key": key}
        if isinstance(value, _JSON_SCALARS):
            return {"type": "json", "value": value}
        if isinstance(value, np.ndarray):
            if isinstance(value, np.ma.MaskedArray):
                raise ValueError(f"{what} is a masked array, which cannot be saved; {hint}")
            arr, was_object = _safe_array(np.asarray(value), what)
            self.add_array(key, arr)
            spec: dict[str, Any] = {"type": "array", "key": key}
            if was_object:
                spec["object"] = True
            return spec
        if isinstance(value, (list, tuple)):
            container = "tuple" if isinstance(value, tuple) else "list"
            if value and all(isinstance(v, np.ndarray) for v in value):
                items = [
                    self.encode(v, f"{key}/{i}", f"{what}[{i}]", objects=False, hint=hint)
                    for i, v in enumerate(value)
                ]
                return {"type": "array_list", "container": container, "items": items}
            if _is_plain_json(value):
                return {"type": container, "value": _to_json(list(value), what)}
            if objects:
                items = [
                    self.encode(v, f"{key}/{i}", f"{what}[{i}]", objects=True, hint=hint)
                    for i, v in enumerate(value)
                ]
                self.version = max(self.version, 2)
                return {"type": "sequence", "container": container, "items": items}
        elif isinstance(value, Mapping):
            if _is_plain_json(value):
                return {"type": "dict", "value": _to_json(value, what)}
            if objects and all(isinstance(k, str) for k in value):
                # arrays (and anything else storable) inside keep their exact type
                items = {
                    k: self.encode(v, f"{key}/{_escape_key(k)}", f"{what}[{k!r}]",
                                   objects=True, hint=hint)
                    for k, v in value.items()
                }
                self.version = max(self.version, 2)
                return {"type": "mapping", "items": items}
            if all(_is_scalar_key(k) for k in value):
                # e.g. class_weight={0: 1.0, 1: 5.0}: keys of any scalar type, as pairs
                pairs = [
                    [
                        self.encode(k, f"{key}/{i}/key", f"{what} key {k!r}",
                                    objects=False, hint=hint),
                        self.encode(v, f"{key}/{i}/value", f"{what}[{k!r}]",
                                    objects=objects, hint=hint),
                    ]
                    for i, (k, v) in enumerate(value.items())
                ]
                self.version = max(self.version, 2)
                return {"type": "pairs", "items": pairs}
        elif objects:
            for name, (cls, to_dict, _) in _value_registry().items():
                if type(value) is cls:
                    try:
                        return {"type": name, "value": _to_json(to_dict(value), what)}
                    except TypeError as exc:
                        raise ValueError(
                            f"{what}: {name}.to_dict() is not JSON data ({exc})"
                        ) from exc
            registry = _estimator_registry()
            if registry.get(type(value).__name__) is type(value):
                self.version = max(self.version, 2)
                return {"type": "estimator", "value": self.encode_estimator(value, key)}
            name = _dataclass_name(type(value))
            if name is not None and not isinstance(value, type):
                fields = {}
                for f in dataclasses.fields(value):
                    fields[f.name] = self.encode(
                        getattr(value, f.name), f"{key}/{f.name}", f"{what}.{f.name}",
                        objects=True, hint=hint,
                    )
                self.version = max(self.version, 2)
                return {"type": "dataclass", "class": name, "fields": fields}
        raise ValueError(
            f"{what} is a {type(value).__module__}.{type(value).__qualname__} object, which "
            f"cannot be saved safely (convexnn model files never use pickle); {hint}"
        )

    def encode_estimator(self, est: Any, prefix: str) -> dict:
        """Encode class name, ``get_params()`` and public fitted attributes of ``est``."""
        cls_name = type(est).__name__
        params = {}
        for name, value in sorted(est.get_params(deep=False).items()):
            params[name] = self.encode(
                value,
                f"{prefix}/params/{name}",
                f"parameter {name!r} of {cls_name}",
                objects=False,
                hint=(
                    f"pass a string, number, bool, None or a numpy array as {name}= instead "
                    "(for random_state: an int seed)"
                ),
            )
        attributes = {}
        for name, value in sorted(vars(est).items()):
            if not _is_fitted_attribute(name):
                continue
            attributes[name] = self.encode(
                value,
                f"{prefix}/attributes/{name}",
                f"fitted attribute {name!r} of {cls_name}",
                objects=True,
                hint="only arrays, lists of arrays, scalars, strings and certificates can be saved",
            )
        return {"class": cls_name, "params": params, "attributes": attributes}


def _is_plain_json(value: Any) -> bool:
    """Whether ``value`` is None/bool/int/float/str, or lists, tuples and str-keyed dicts
    of those (NumPy scalars and arrays are not: they keep their dtype elsewhere)."""
    if isinstance(value, _JSON_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain_json(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_plain_json(v) for k, v in value.items())
    return False


def _is_scalar_key(key: Any) -> bool:
    return isinstance(key, _JSON_SCALARS) or (
        isinstance(key, np.generic) and not isinstance(key, (np.void, np.object_))
    )


def _escape_key(key: str) -> str:
    """A dict key made safe as a part of an array name (``/`` separates parts)."""
    return key.replace("%", "%25").replace("/", "%2F")


def _is_fitted_attribute(name: str) -> bool:
    return name.endswith("_") and not name.startswith("_") and name.isidentifier()


# --------------------------------------------------------------------------- decoding


class _Reader:
    """Rebuilds values from a header's specs and the archive's arrays."""

    def __init__(self, arrays: Mapping[str, np.ndarray], path: str) -> None:
        self.arrays = arrays
        self.path = path
        self.used: set[str] = set()

    def _array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise ValueError(f"{self.path}: header refers to a missing array {key!r}")
        self.used.add(key)
        return self.arrays[key]

    def decode(self, spec: Any) -> Any:
        if not isinstance(spec, dict) or "type" not in spec:
            raise ValueError(f"{self.path}: malformed value in header: {spec!r:.200}")
        kind = spec["type"]
        if kind == "json" or kind == "list" or kind == "dict":
            return spec["value"]
        if kind == "tuple":
            return tuple(spec["value"])
        if kind == "scalar":
            return self._array(spec["key"])[()]
        if kind == "array":
            arr = self._array(spec["key"])
            return arr.astype(object) if spec.get("object") else arr
        if kind == "array_list":
            items = [self.decode(item) for item in spec["items"]]
            return tuple(items) if spec.get("container") == "tuple" else items
        if kind == "sequence":
            items = [self.decode(item) for item in spec["items"]]
            return tuple(items) if spec.get("container") == "tuple" else items
        if kind == "pairs":
            return {self.decode(k): self.decode(v) for k, v in spec["items"]}
        if kind == "mapping":
            return {str(k): self.decode(v) for k, v in dict(spec["items"]).items()}
        if kind == "estimator":
            return self.build(spec["value"], _estimator_registry())
        if kind == "dataclass":
            cls = _find_dataclass(spec.get("class"))
            if cls is None:
                raise ValueError(
                    f"{self.path}: unknown value class {spec.get('class')!r} in header; the "
                    "file was written by a different convexnn version"
                )
            values = {str(k): self.decode(v) for k, v in dict(spec["fields"]).items()}
            known = {f.name: f for f in dataclasses.fields(cls)}
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ValueError(
                    f"{self.path}: {cls.__name__} in this convexnn has no field(s) "
                    f"{', '.join(unknown)}; the file was written by a different convexnn version"
                )
            obj = cls(**{k: v for k, v in values.items() if known[k].init})
            for k, v in values.items():
                if not known[k].init:
                    object.__setattr__(obj, k, v)
            return obj
        registry = _value_registry()
        if kind in registry:
            return registry[kind][2](spec["value"])
        raise ValueError(f"{self.path}: unknown value type {kind!r} in header")

    def build(self, entry: Any, registry: Mapping[str, type]) -> Any:
        """Instantiate ``entry['class']`` from ``registry`` and restore params and attributes."""
        if not isinstance(entry, dict):
            raise ValueError(f"{self.path}: malformed estimator entry in header")
        cls_name = entry.get("class")
        cls = registry.get(cls_name) if isinstance(cls_name, str) else None
        if cls is None:
            raise ValueError(
                f"{self.path}: unknown estimator class {cls_name!r}; this convexnn can load "
                f"{', '.join(sorted(registry))}"
            )
        params = {name: self.decode(spec) for name, spec in dict(entry.get("params", {})).items()}
        known = set(cls().get_params(deep=False))
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"{self.path}: {cls_name} in this convexnn has no parameter(s) "
                f"{', '.join(unknown)}; the file was written by a different convexnn version"
            )
        est = cls(**params)
        for name, spec in dict(entry.get("attributes", {})).items():
            if not _is_fitted_attribute(name):
                raise ValueError(f"{self.path}: invalid attribute name {name!r} in header")
            setattr(est, name, self.decode(spec))
        return est


# --------------------------------------------------------------------------- checksum


def _checksum(arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, then the header.

    The header is hashed as canonical JSON, without its ``checksum`` field.
    """
    digest = hashlib.sha256()

    def feed(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    for name in sorted(arrays):
        arr = np.asarray(arrays[name])
        feed(name.encode("utf-8"))
        feed(arr.dtype.str.encode("ascii"))
        feed(json.dumps(list(arr.shape)).encode("ascii"))
        feed(arr.tobytes(order="C"))
    body = {k: v for k, v in header.items() if k != "checksum"}
    feed(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return digest.hexdigest()


# --------------------------------------------------------------------------- public API


def save(
    estimator: Any,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Save a convexnn estimator (or a StandardScaler + estimator Pipeline, or a network)
    to ``path``.

    The file is a single ``.npz`` archive that :func:`load` reads with
    ``allow_pickle=False``; nothing in it is pickled. It stores the estimator's class
    name, its ``get_params()`` and every public fitted attribute (names ending in
    ``_``), and a SHA-256 checksum that :func:`load` verifies. The file is written to
    a temporary name in the same folder and then renamed, so an interrupted save never
    leaves a half-written model at ``path``.

    Parameters
    ----------
    estimator : convexnn estimator, Pipeline or network
        The model to save, fitted or not: any estimator class listed in
        ``convexnn.estimators.__all__``. A :class:`~sklearn.pipeline.Pipeline` must
        consist of exactly a :class:`~sklearn.preprocessing.StandardScaler` followed by
        one convexnn estimator. A network value object on its own
        (:class:`~convexnn.network.Network`,
        :class:`~convexnn.threshold.DeepThresholdNetwork`,
        :class:`~convexnn.deep1d.ChainNetwork` or :class:`~convexnn.deep1d.BlockNetwork`,
        e.g. ``estimator.to_network()``) is stored field by field (format version 3).
        Array attributes held by another framework or on a GPU
        (torch tensors, CuPy arrays) are copied to host memory as NumPy arrays
        (floating point as float64), so the file loads on a CPU-only machine.
    path : str or path-like
        Destination file. Written as given (no ``.npz`` suffix is added).
    metadata : mapping, optional
        Extra JSON-serializable information stored verbatim in the header and returned
        by ``load(path, return_metadata=True)``; the command line stores the CSV's
        feature and target column names here.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``estimator`` is not a supported model, or a parameter or fitted attribute
        cannot be stored without pickle (e.g. ``random_state`` given as a
        ``RandomState`` instance; pass an int seed instead).

    Examples
    --------
    >>> from convexnn import ConvexMLPClassifier, save, load  # doctest: +SKIP
    >>> clf = ConvexMLPClassifier(random_state=0).fit(X, y)  # doctest: +SKIP
    >>> save(clf, "model.npz")  # doctest: +SKIP
    >>> load("model.npz").predict(X)  # doctest: +SKIP
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    writer = _Writer()
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "convexnn_version": __version__,
        "library_versions": _library_versions(),
    }
    registry = _estimator_registry()

    def check_estimator(est: Any, where: str) -> None:
        if registry.get(type(est).__name__) is not type(est):
            raise ValueError(
                f"cannot save {where}{type(est).__module__}.{type(est).__qualname__}: "
                f"convexnn.io.save supports {_supported()}"
            )

    if isinstance(estimator, Pipeline):
        steps = list(estimator.steps)
        if (
            len(steps) != 2
            or type(steps[0][1]) is not StandardScaler
            or registry.get(type(steps[1][1]).__name__) is not type(steps[1][1])
        ):
            described = ", ".join(type(step).__name__ for _, step in steps)
            raise ValueError(
                f"cannot save a Pipeline of ({described}): convexnn.io.save supports {_supported()}"
            )
        pipeline_params = {}
        for name, value in sorted(estimator.get_params(deep=False).items()):
            if name == "steps":
                continue
            pipeline_params[name] = writer.encode(
                value,
                f"pipeline/params/{name}",
                f"parameter {name!r} of Pipeline",
                objects=False,
                hint=f"pass a string, number, bool or None as {name}= instead",
            )
        header["kind"] = "pipeline"
        header["pipeline"] = {
            "step_names": [str(name) for name, _ in steps],
            "params": pipeline_params,
            "scaler": writer.encode_estimator(steps[0][1], "scaler"),
        }
        header["estimator"] = writer.encode_estimator(steps[1][1], "estimator")
    elif _network_registry().get(type(estimator).__name__) is type(estimator):
        header["kind"] = "network"
        header["network"] = writer.encode(
            estimator, "network", f"the {type(estimator).__name__}", objects=True,
            hint="networks hold arrays, scalars and strings only",
        )
        writer.version = max(writer.version, _NETWORK_FORMAT_VERSION)
    else:
        check_estimator(estimator, "")
        header["kind"] = "estimator"
        header["estimator"] = writer.encode_estimator(estimator, "estimator")

    if metadata is not None:
        try:
            header["metadata"] = _to_json(dict(metadata), "metadata")
        except TypeError as exc:
            raise ValueError(f"metadata must be JSON-serializable: {exc}") from exc

    header["format_version"] = writer.version
    header["checksum"] = {"algorithm": "sha256", "value": _checksum(writer.arrays, header)}
    header_bytes = json.dumps(header, sort_keys=True, indent=1).encode("utf-8")
    arrays = dict(writer.arrays)
    arrays[_HEADER_KEY] = np.frombuffer(header_bytes, dtype=np.uint8)

    path = Path(os.fspath(path))
    # A fresh temporary name beside the target, created with the usual permissions
    # (0o666 minus the umask), then renamed over ``path``.
    tmp_name = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return path


def load(path: str | os.PathLike[str], *, return_metadata: bool = False) -> Any:
    """Load a model written by :func:`save`.

    The archive is read with ``np.load(..., allow_pickle=False)``, the header's format
    name, format version and checksum are verified, and the estimator (or network) class
    is looked up in convexnn's own registry (no name from the file is ever imported).

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    return_metadata : bool, default=False
        Also return the ``metadata`` dict given to :func:`save` (empty if none).

    Returns
    -------
    model : convexnn estimator, Pipeline or network
        The model, with the same parameters and fitted attributes (a network: the same
        fields) as the one saved; it predicts identically. Arrays come back as NumPy arrays in host memory
        (see :func:`save`), whatever device the model was fitted on.
    metadata : dict
        Only when ``return_metadata=True``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a convexnn model, was written by a newer format version,
        names an unknown estimator class, or fails its checksum (it was corrupted or
        modified after saving).
    """
    path_str = os.fspath(path)
    arrays = _read_archive(path_str)
    raw = arrays.pop(_HEADER_KEY, None)
    if raw is None:
        raise ValueError(f"{path_str} is not a convexnn model file (no {_HEADER_KEY} entry)")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{path_str}: malformed {_HEADER_KEY} entry")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path_str}: header is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        name = header.get("format") if isinstance(header, dict) else None
        raise ValueError(
            f"{path_str} is not a convexnn model file (format {name!r}, expected {FORMAT_NAME!r})"
        )
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path_str}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"file written by convexnn format version {version}; this convexnn reads up to "
            f"{FORMAT_VERSION}; upgrade convexnn"
        )
    checksum = header.get("checksum")
    if (
        not isinstance(checksum, dict)
        or checksum.get("algorithm") != "sha256"
        or not isinstance(checksum.get("value"), str)
    ):
        raise ValueError(f"{path_str}: header has no sha256 checksum")
    if not hmac.compare_digest(checksum["value"], _checksum(arrays, header)):
        raise ValueError(
            f"checksum mismatch in {path_str}: the file is corrupted or was modified after "
            "it was saved; refusing to load it"
        )

    reader = _Reader(arrays, path_str)
    kind = header.get("kind")
    if kind == "network":
        model = _build_network(header.get("network"), reader)
    else:
        estimator = reader.build(header.get("estimator"), _estimator_registry())
        if kind == "pipeline":
            model = _build_pipeline(header.get("pipeline"), estimator, reader)
        elif kind == "estimator":
            model = estimator
        else:
            raise ValueError(f"{path_str}: unknown model kind {kind!r}")
    unused = sorted(set(arrays) - reader.used)
    if unused:
        raise ValueError(f"{path_str}: arrays not described by the header: {', '.join(unused)}")
    if return_metadata:
        metadata = header.get("metadata") or {}
        return model, metadata
    return model


def _build_network(spec: Any, reader: _Reader) -> Any:
    """The network a ``kind = "network"`` file holds; only the classes of
    :func:`_network_registry` are accepted."""
    allowed = _network_registry()
    names = {f"{cls.__module__}:{cls.__qualname__}" for cls in allowed.values()}
    if not (isinstance(spec, dict) and spec.get("type") == "dataclass" and spec.get("class") in names):
        found = spec.get("class") if isinstance(spec, dict) else None
        raise ValueError(
            f"{reader.path}: a network file must hold one of {', '.join(sorted(allowed))}; "
            f"found {found!r}"
        )
    return reader.decode(spec)


def _build_pipeline(entry: Any, estimator: Any, reader: _Reader) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(entry, dict):
        raise ValueError(f"{reader.path}: malformed pipeline entry in header")
    names = entry.get("step_names")
    if not (isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{reader.path}: malformed pipeline step names {names!r}")
    scaler = reader.build(entry.get("scaler"), {"StandardScaler": StandardScaler})
    params = {name: reader.decode(spec) for name, spec in dict(entry.get("params", {})).items()}
    accepted = set(Pipeline([("a", "passthrough")]).get_params(deep=False))
    for name in sorted(set(params) - accepted):
        if params[name] is not None:  # a newer scikit-learn's option, set to non-default
            raise ValueError(
                f"{reader.path}: Pipeline parameter {name}={params[name]!r} is not supported "
                "by the installed scikit-learn"
            )
        del params[name]
    return Pipeline([(names[0], scaler), (names[1], estimator)], **params)


def _read_archive(path: str) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive without allowing pickled data."""
    try:
        data = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a convexnn model file (not an .npz archive)") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a convexnn model file (a single .npy array, not .npz)")
    with data:
        arrays = {}
        for name in data.files:
            try:
                arrays[name] = data[name]
            except ValueError as exc:
                raise ValueError(
                    f"{path}: entry {name!r} holds pickled objects; convexnn never writes "
                    "those and refuses to load them"
                ) from exc
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{path}: entry {name!r} is corrupted ({exc})") from exc
    return arrays


def _library_versions() -> dict[str, str]:
    import scipy
    import sklearn

    return {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }
