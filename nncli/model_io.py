"""Model and checkpoint files: one .npz of plain arrays plus a JSON `meta` document.

Never unpickled: arrays load with ``allow_pickle=False``, and `meta` is UTF-8 JSON stored as
bytes. Every field is validated against the others before a Network is built from it, so a
truncated, foreign or hostile file gives one clear ModelFileError. Files are written to a
temporary file in the same folder and moved into place with ``os.replace``: a crash, a full
disk or Ctrl-C never leaves half a file under the real name.

A checkpoint is a model file with the training state added: arrays ``opt_s1``, ``opt_s2``
(and ``best_phi``), and ``meta["checkpoint"]`` holding `Trainer.state_dict()`.

A network with KAN layers also stores ``meta["layer_options"]`` (per layer {"grid", "order"}
or null) and the array ``knots``: every KAN layer's knots (n_in × (G+2k+1), row-major), layer
after layer, in φ's dtype. They are not trained, so they are not in φ.
"""
import contextlib
import io
import json
import math
import os
import secrets
import stat
import zipfile
from dataclasses import dataclass, field

import numpy as np

from nncli._version import __version__
from nncli.errors import ModelFileError, NncliError
from nncli.functions import ACTIVATIONS, INITS, LAYER_KINDS, LOSSES
from nncli.interrupts import deferred_interrupts, interrupted_during
from nncli.network import DTYPES, Network, layer_options, n_params as network_n_params

FORMAT = "nncli-model"
FORMAT_VERSION = 1
ARRAY_KEYS = {"phi", "meta", "opt_s1", "opt_s2", "best_phi", "knots", "ensemble", "ensemble_knots"}


@dataclass
class Model:
    """A loaded model: the network and everything else the file says about it."""
    network: Network
    meta: dict
    arrays: dict = field(default_factory=dict)   # checkpoint state arrays, if any

    @property
    def schema(self):
        """The data schema (nncli.data.Schema) or None for a model made through the API."""
        if self.meta.get("schema") is None:
            return None
        from nncli.data import Schema
        return Schema.from_dict(self.meta["schema"])


def check_writable(path):
    """NncliError now, rather than after an hour of training, if `path` cannot be written."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise NncliError(f"cannot write {path}: it is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        return  # a device or a pipe: written directly
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise NncliError(f"cannot write {path}: {folder} {what}")
    if not os.access(folder, os.W_OK):
        raise NncliError(f"cannot write {path}: folder {folder} is not writable")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success move it into place, else delete it."""
    path = os.fspath(path)
    check_writable(path)
    if os.path.exists(path) and not os.path.isfile(path):
        # A device or a pipe (/dev/stdout, /dev/full, a FIFO): write to it directly, since
        # os.replace would put a regular file in its place.
        try:
            yield path
        except Exception as e:
            _raise_as_write_error(e, path)
            raise
        return
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        # The name is chosen before the file is created, so that Ctrl-C or SIGTERM at any
        # moment (Python raises it between any two steps) finds `tmp` set for the cleanup.
        while True:
            tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                break
            except FileExistsError:
                continue
        yield tmp
        # Created private (0600) while being written; give it the permissions a new file gets.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        _remove(tmp)
        _raise_as_write_error(e, path)
        raise


def _raise_as_write_error(e, path):
    """Raise what writing `path` failed with, as the caller should see it: an OSError as
    "cannot write", and Ctrl-C that struck the writer's own cleanup (see
    interrupts.interrupted_during) as the interrupt it is. Anything else: return."""
    if not isinstance(e, KeyboardInterrupt) and interrupted_during(e):
        raise KeyboardInterrupt from None
    if isinstance(e, OSError):
        raise NncliError(f"cannot write {path}: {e.strerror or e}") from None


def _remove(path):
    if path is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)


def _flat_knots(network):
    """The KAN layers' knots one after another (the file's `knots`), or None."""
    grids = [g.ravel() for g in network.grids if g is not None]
    return np.concatenate(grids) if grids else None


def build_meta(network, **fields):
    """The meta document of `network`, plus any fields given (schema, config, metrics...)."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "nncli_version": __version__,
            "layers": network.layers, "layer_kinds": network.kinds,
            "layer_options": network.options,
            "activations": network.activations, "loss": network.loss,
            "dtype": network.dtype.name, "init": network.init, "n_params": network.n_params}
    meta.update(fields)
    return meta


def save_model(path, network, meta=None, arrays=None):
    """Write `network` (and checkpoint `arrays`) to `path` atomically."""
    meta = build_meta(network) if meta is None else meta
    payload = {"phi": network.phi,
               "meta": np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)}
    if _flat_knots(network) is not None:
        payload["knots"] = _flat_knots(network)
    payload.update(arrays or {})
    if hasattr(network, "stacked_phi"):   # an Ensemble (nncli.ensemble): the other members
        payload["ensemble"] = network.stacked_phi()
        if "knots" in payload:   # KAN layers: each member's grids are its own
            payload["ensemble_knots"] = np.stack([_flat_knots(m) for m in network.members[1:]])
        meta = {**meta, "ensemble": {**(meta.get("ensemble") or {}), "members": len(network)}}
        payload["meta"] = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            # A device or a pipe (-o /dev/null, /dev/stdout): the zip writer seeks back to
            # patch its headers, which such a file cannot do, so the archive is built in
            # memory and written in one go.
            regular = stat.S_ISREG(os.fstat(f.fileno()).st_mode)
            archive = f if regular else io.BytesIO()
            with deferred_interrupts():   # zipfile breaks if Ctrl-C strikes it
                np.savez(archive, **payload)
            if regular:
                f.flush()
                os.fsync(f.fileno())
            else:
                f.write(archive.getbuffer())


def load_model(path):
    """Read and validate a model (or checkpoint) file; raises ModelFileError on anything wrong."""
    path = os.fspath(path)
    name = path
    if os.path.isdir(path):
        raise ModelFileError(f"{name} is a directory, not a model file")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ModelFileError(f"cannot read model file {name}: {e.strerror or e}") from None
    with f:
        if f.read(4) != b"PK\x03\x04":
            raise ModelFileError(f"{name} is not an nncli model file (not an .npz archive)")
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                keys = set(npz.files)
                if not {"phi", "meta"} <= keys:
                    missing = ", ".join(sorted({"phi", "meta"} - keys))
                    raise ModelFileError(f"{name} is not an nncli model file (no {missing} entry)")
                unknown = keys - ARRAY_KEYS
                if unknown:
                    raise ModelFileError(f"{name} is not an nncli model file (unexpected entries: {', '.join(sorted(unknown))})")
                arrays = {k: npz[k] for k in keys}
        except ModelFileError:
            raise
        except ValueError as e:
            if "pickle" in str(e):
                raise ModelFileError(f"{name} is not an nncli model file: it holds a pickled "
                                     "object array, which nncli never loads") from None
            raise ModelFileError(f"{name} is not a readable nncli model file ({e})") from None
        except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
            raise ModelFileError(f"{name} is corrupt or truncated ({e})") from None
        except Exception as e:
            # zipfile and numpy's .npy header parser raise many kinds of errors on damaged
            # bytes (NotImplementedError, tokenize errors, a huge shape's MemoryError...).
            raise ModelFileError(f"{name} is corrupt or truncated "
                                 f"({type(e).__name__}: {e})") from None
    meta = _parse_meta(arrays.pop("meta"), name)
    return _build(meta, arrays, name)


def _parse_meta(raw, name):
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{name}: the meta entry is not UTF-8 JSON bytes")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"{name}: the meta entry is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{name} is not an nncli model file (meta has no format '{FORMAT}')")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ModelFileError(f"{name}: model format version {version!r} is not supported "
                             f"(this nncli {__version__} reads version {FORMAT_VERSION})")
    return meta


def _field(meta, key, kind, name):
    value = meta.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ModelFileError(f"{name}: meta field '{key}' is missing or not a {kind.__name__ if isinstance(kind, type) else kind[0].__name__}")
    return value


# Descriptive meta fields: when present and not null, each must have its type.
OPTIONAL_FIELDS = {
    "nncli_version": (str, "a string"), "init": (str, "a string"), "task": (str, "a string"),
    "feature_names": (list, "a list of strings"), "config": (dict, "an object"),
    "seed": (int, "a whole number"), "data_sha256": (str, "a string"),
    "n_params": (int, "a whole number"), "train_rows": (int, "a whole number"),
    "val_rows": (int, "a whole number"), "epochs_run": (int, "a whole number"),
    "best_epoch": (int, "a whole number"), "stopped_early": (bool, "true or false"),
    "diverged": (bool, "true or false"), "train_seconds": ((int, float), "a number"),
    "samples_per_second": ((int, float), "a number"), "metrics": (dict, "an object"),
    "checkpoint": (dict, "an object"),
}


def _check_optional(meta, name):
    for key, (kind, what) in OPTIONAL_FIELDS.items():
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ModelFileError(f"{name}: meta field '{key}' must be {what}, not {value!r:.40}")
    if not all(isinstance(s, str) for s in meta.get("feature_names") or []):
        raise ModelFileError(f"{name}: meta field 'feature_names' must be a list of strings")


def _build(meta, arrays, name):
    _check_optional(meta, name)
    layers = _field(meta, "layers", list, name)
    if len(layers) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1_000_000 for n in layers):
        raise ModelFileError(f"{name}: meta field 'layers' must list at least two widths between 1 and 1000000")
    activations = _field(meta, "activations", list, name)
    if len(activations) != len(layers) - 1 or not all(isinstance(a, str) and a in ACTIVATIONS for a in activations):
        raise ModelFileError(f"{name}: meta field 'activations' must name one known activation per layer")
    loss = _field(meta, "loss", str, name)
    if loss not in LOSSES:
        raise ModelFileError(f"{name}: unknown loss {loss!r} in meta")
    dtype = _field(meta, "dtype", str, name)
    if dtype not in DTYPES:
        raise ModelFileError(f"{name}: meta field 'dtype' must be float32 or float64")
    kinds = meta.get("layer_kinds")
    if kinds is None:   # files from before layer kinds: every layer dense
        kinds = ["dense"] * (len(layers) - 1)
    elif not (isinstance(kinds, list) and len(kinds) == len(layers) - 1
              and all(isinstance(k, str) and k in LAYER_KINDS for k in kinds)):
        raise ModelFileError(f"{name}: meta field 'layer_kinds' must name one known layer kind "
                             f"per layer ({', '.join(LAYER_KINDS)})")
    options = meta.get("layer_options")
    if options is None and "kan" not in kinds:
        options = [None] * len(kinds)
    try:
        options = layer_options(kinds, options)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{name}: meta field 'layer_options' must give each KAN layer its "
                             f"grid and order, and null for other layers ({e})") from None
    grids = _unpack_knots(arrays.pop("knots", None), layers, kinds, options, dtype, name)
    phi = arrays.pop("phi")
    others = arrays.pop("ensemble", None)
    n_params = network_n_params(layers, kinds, options)
    _check_vector(phi, n_params, dtype, "phi", name)
    members = _check_ensemble(meta, others, n_params, dtype, name)
    member_grids = _member_grids(arrays.pop("ensemble_knots", None), len(members), grids,
                                 (layers, kinds, options, dtype, name))
    for key, value in arrays.items():
        _check_vector(value, n_params, dtype, key, name)
    try:
        # init only matters for re-initialising; an unknown one is not worth refusing a model.
        init = meta.get("init") if meta.get("init") in INITS else "auto"
        network = Network(layers, activations, loss, dtype=dtype, init=init, phi=phi, kinds=kinds,
                          options=options, grids=grids)
        if members:
            from nncli.ensemble import Ensemble
            network = Ensemble([network] + [Network(layers, activations, loss, dtype=dtype,
                                                    init=init, phi=p, kinds=kinds, options=options,
                                                    grids=g) for p, g in zip(members, member_grids)])
    except ValueError as e:
        raise ModelFileError(f"{name}: {e}") from None
    model = Model(network, meta, arrays)
    if meta.get("schema") is not None:
        schema = model.schema   # validates, raising ModelFileError
        if schema.n_features != layers[0] or schema.n_outputs != layers[-1]:
            raise ModelFileError(f"{name}: the data schema ({schema.n_features} inputs, "
                                 f"{schema.n_outputs} outputs) does not fit the layers {layers}")
    return model


def _check_ensemble(meta, others, n_params, dtype, name):
    """The φ rows of an ensemble's other members (see nncli.ensemble), checked against
    meta["ensemble"] = {"members": N, ...}; [] for a single network."""
    info = meta.get("ensemble")
    if info is None and others is None:
        return []
    if not isinstance(info, dict) or others is None:
        raise ModelFileError(f"{name}: an ensemble needs both meta field 'ensemble' and the "
                             "array 'ensemble'")
    n = info.get("members")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ModelFileError(f"{name}: meta field 'ensemble.members' must be a whole number ≥ 2")
    if others.ndim != 2 or others.shape != (n - 1, n_params) or others.dtype != np.dtype(dtype):
        raise ModelFileError(f"{name}: 'ensemble' must be a {n - 1} × {n_params} {dtype} array, "
                             f"got {others.shape} {others.dtype}")
    if not np.all(np.isfinite(others)):
        raise ModelFileError(f"{name}: 'ensemble' contains NaN or infinite parameters")
    return [np.ascontiguousarray(row) for row in others]


def _member_grids(rows, n_members, grids, layout):
    """The grids of an ensemble's other members, one row of `ensemble_knots` each (a KAN
    member's knots are its own: hidden layers' grids follow their inputs), checked."""
    name = layout[-1]
    if grids is None:
        if rows is not None:
            raise ModelFileError(f"{name}: 'ensemble_knots' without KAN layers")
        return [None] * n_members
    if rows is None:
        if n_members:
            raise ModelFileError(f"{name}: an ensemble of KAN networks needs 'ensemble_knots'")
        return []
    if rows.ndim != 2 or rows.shape[0] != n_members:
        raise ModelFileError(f"{name}: 'ensemble_knots' must hold one row of knots per member "
                             f"after the first ({n_members}), got shape {rows.shape}")
    return [_unpack_knots(np.ascontiguousarray(row), *layout) for row in rows]


def _unpack_knots(knots, layers, kinds, options, dtype, name):
    """Each layer's knots from the flat `knots` array (None for dense layers), checked."""
    shapes = [(layers[k], o["grid"] + 2 * o["order"] + 1) if kind == "kan" else None
              for k, (kind, o) in enumerate(zip(kinds, options))]
    total = sum(a * b for a, b in filter(None, shapes))
    if knots is None:
        if total:
            raise ModelFileError(f"{name}: the model has KAN layers but no 'knots' entry")
        return None
    if knots.ndim != 1 or knots.dtype != np.dtype(dtype) or knots.shape[0] != total:
        raise ModelFileError(f"{name}: 'knots' must be a 1-D {dtype} array of {total} values "
                             f"(the KAN layers' grids), got {knots.ndim}-D {knots.dtype} of {knots.size}")
    grids, off = [], 0
    for k, shape in enumerate(shapes):
        if shape is None:
            grids.append(None)
            continue
        g = knots[off:off + shape[0] * shape[1]].reshape(shape)
        off += g.size
        if not np.all(np.isfinite(g)) or not np.all(np.diff(g, axis=1) > 0):
            raise ModelFileError(f"{name}: the knots of layer {k + 1} are not finite and "
                                 "strictly increasing")
        grids.append(g)
    return grids


def _check_vector(a, n_params, dtype, key, name):
    if a.ndim != 1 or a.dtype != np.dtype(dtype):
        raise ModelFileError(f"{name}: '{key}' must be a 1-D {dtype} array, got {a.ndim}-D {a.dtype}")
    if a.shape[0] != n_params:
        raise ModelFileError(f"{name}: '{key}' holds {a.shape[0]} values but the layers need {n_params}")
    if key in ("phi", "best_phi") and not np.all(np.isfinite(a)):
        raise ModelFileError(f"{name}: '{key}' contains NaN or infinite parameters")


def json_safe(value):
    """Replace non-finite floats (JSON has none) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
