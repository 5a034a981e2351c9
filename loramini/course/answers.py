"""The student's answers across a process boundary, in safe formats only: JSON for plain data, safetensors for
tensors, never pickle.

The student kernel calls `record` where the solution has a check call: the check's arguments are written out
and, when an argument is the student's function, the kernel's own copy of the check drives it while a *tape*
records what each call returned and how it left the models it was given. The judge (a fresh interpreter that
never ran student code) reads that back with `read` and runs the real check on it; a function becomes a
`Replay` that answers each call from the tape. The kernel may be compromised, so everything read is checked:

* exact types only: int, float, bool, str, None, list, tuple, dict, torch.Tensor (an nn.Parameter becomes a
  plain tensor), numpy scalars and arrays, torch dtypes, pandas Series/DataFrame of such values, and nn.Module
  trees built from known layers. A subclass (an int that equals everything, a Tensor overriding `allclose`)
  is refused, with a message that names the plain type to give instead;
* messages are made here, from fixed words: nothing the student's code wrote reaches a status line.
"""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

_PLAIN = {type(None): "none", bool: "bool", int: "int", float: "float", str: "str"}
_MAX_DEPTH = 32
_NP_SCALARS = ("bool", "float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8")
_BASES = ("bool", "int", "float", "str", "list", "tuple", "dict", "Tensor", "ndarray", "Series", "DataFrame",
          "Module")


class Refused(TypeError):
    """An answer the judge will not take (a subclass, an unknown object); the message says what to give."""


def _base_name(value) -> str:
    """The plain type a refused value pretends to be, from a fixed list (never a name the student chose)."""
    import torch

    for base, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"),
                       (tuple, "tuple"), (dict, "dict"), (torch.Tensor, "Tensor"), (torch.nn.Module, "Module")):
        if isinstance(value, base):
            return name
    return "object"


def refusal(base: str) -> str:
    """The one-line message for a refused answer of (pretended) type `base`."""
    if base not in _BASES:
        return "The answer is an object the grader cannot read: give plain numbers, strings, tensors or lists."
    return (f"The answer is a subclass of {base}, not a plain {base}: give a plain value "
            f"(e.g. int(x), float(x), a torch.Tensor from your computation).")


class Writer:
    """Encodes values into JSON-able trees; tensors go to `self.tensors` (saved with safetensors)."""

    def __init__(self):
        self.tensors = {}

    def tensor(self, value, tag: str) -> dict:
        key = f"t{len(self.tensors)}"
        self.tensors[key] = value.detach().to("cpu").clone().contiguous()
        return {"t": tag, "k": key}

    def encode(self, value, depth: int = 0) -> dict:
        import numpy as np
        import torch

        if depth > _MAX_DEPTH:
            raise Refused(refusal("object"))
        kind = type(value)
        if kind in _PLAIN:
            return {"t": _PLAIN[kind], "v": repr(value) if kind is float else value}
        if kind in (list, tuple):
            return {"t": kind.__name__, "v": [self.encode(v, depth + 1) for v in value]}
        if kind is dict:
            return {"t": "dict", "v": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in value.items()]}
        if kind in (torch.Tensor, torch.nn.Parameter):
            if value.layout != torch.strided or value.is_complex() or value.device.type == "meta":
                raise Refused(refusal("object"))
            return self.tensor(value, "tensor")
        if kind is torch.dtype:
            return {"t": "dtype", "v": str(value).replace("torch.", "")}
        if kind is np.ndarray:
            if value.dtype.kind not in "biuf":
                raise Refused(refusal("object"))
            return self.tensor(torch.from_numpy(np.ascontiguousarray(value)), "ndarray")
        if isinstance(value, np.generic) and kind in (np.bool_, np.float64, np.float32, np.float16, np.int64,
                                                       np.int32, np.int16, np.int8, np.uint8):
            return {"t": "npscalar", "dtype": np.dtype(kind).name, "v": self.encode(value.item(), depth + 1)}
        if kind.__module__.startswith("pandas"):
            return self.frame(value, depth)
        if isinstance(value, torch.nn.Module):
            return self.module(value, depth)
        raise Refused(refusal(_base_name(value)))

    def frame(self, value, depth: int) -> dict:
        import pandas as pd

        if type(value) is pd.Series:
            return {"t": "series", "name": self.encode(value.name, depth + 1),
                    "index": self.encode(list(value.index), depth + 1), "v": self.encode(list(value), depth + 1)}
        if type(value) is pd.DataFrame:
            return {"t": "frame", "index": self.encode(list(value.index), depth + 1),
                    "v": self.encode({c: list(value[c]) for c in value.columns}, depth + 1)}
        raise Refused(refusal("object"))

    def module(self, value, depth: int) -> dict:
        """An nn.Module tree of known layers: kind, constructor arguments, own tensors, children."""
        kind = _module_kinds().get(type(value))
        if kind is None:
            raise Refused(refusal("Module" if type(value).__module__.startswith("torch") else "object"))
        node = {"t": "module", "kind": kind, "args": self.encode(_module_args(kind, value), depth + 1),
                "params": {n: self.tensor(p, "tensor") for n, p in value._parameters.items() if p is not None},
                "frozen": [n for n, p in value._parameters.items() if p is not None and not p.requires_grad],
                "buffers": {n: self.tensor(b, "tensor") for n, b in value._buffers.items() if b is not None},
                "children": {n: self.module(c, depth + 1) for n, c in value._modules.items() if c is not None}}
        return node


def _module_kinds() -> dict:
    from torch import nn

    from .. import checks
    from ..layer import AuxFactors, LoRAMiniLinear

    kinds = {nn.Linear: "Linear", nn.ModuleDict: "ModuleDict", nn.Sequential: "Sequential",
             nn.ModuleList: "ModuleList", nn.Identity: "Identity", nn.Dropout: "Dropout",
             LoRAMiniLinear: "LoRAMiniLinear", AuxFactors: "AuxFactors"}
    if hasattr(checks, "_Block"):
        kinds[checks._Block] = "Block"
    return kinds


def _module_args(kind: str, m) -> dict:
    if kind == "Linear":
        return {"in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    if kind == "LoRAMiniLinear":
        return {"r": m.r, "a": m.a, "b": m.b, "alpha": float(m.alpha), "name": str(m.name),
                "projection_seed": int(m.projection_seed), "aux_init": str(m.aux_init),
                "use_rslora": bool(m.use_rslora), "merged": bool(m.merged)}
    if kind == "Block":
        return {"d": m.query.in_features}
    return {}


# ---------------------------------------------------------------- reading (in the judge)
class Reader:
    """Decodes what a `Writer` wrote, trusting nothing: unknown tags, wrong shapes of data → Refused."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def decode(self, node, depth: int = 0):
        import numpy as np
        import torch

        if depth > _MAX_DEPTH or not isinstance(node, dict):
            raise Refused(refusal("object"))
        tag, v = node.get("t"), node.get("v")
        simple = {"none": type(None), "bool": bool, "int": int, "str": str}
        if tag in simple:
            if type(v) is not simple[tag]:
                raise Refused(refusal("object"))
            return v
        if tag == "float":
            return float(v) if type(v) is str and len(v) < 40 else _bad()
        if tag in ("list", "tuple"):
            items = [self.decode(x, depth + 1) for x in _list(v)]
            return items if tag == "list" else tuple(items)
        if tag == "dict":
            return {self.decode(_list(kv)[0], depth + 1): self.decode(_list(kv)[1], depth + 1) for kv in _list(v)}
        if tag in ("tensor", "ndarray"):
            t = self.tensors.get(node.get("k"))
            if type(t) is not torch.Tensor:
                raise Refused(refusal("object"))
            return t.clone() if tag == "tensor" else t.numpy().copy()
        if tag == "dtype":
            dtype = getattr(torch, str(v), None)
            return dtype if type(dtype) is torch.dtype else _bad()
        if tag == "npscalar":
            if node.get("dtype") not in _NP_SCALARS:
                _bad()
            return np.dtype(node["dtype"]).type(self.decode(v, depth + 1))
        if tag == "refused":
            raise Refused(refusal(str(node.get("base"))))
        if tag in ("series", "frame"):
            return self.frame(node, depth)
        if tag == "module":
            return self.module(node, depth)
        return _bad()

    def frame(self, node, depth: int):
        import pandas as pd

        index = self.decode(node.get("index"), depth + 1)
        values = self.decode(node.get("v"), depth + 1)
        if node["t"] == "series":
            return pd.Series(values, index=index, name=self.decode(node.get("name"), depth + 1))
        return pd.DataFrame(values, index=index)

    def module(self, node, depth: int = 0):
        import torch
        from torch import nn

        from .. import checks
        from ..layer import AuxFactors, LoRAMiniLinear

        if not isinstance(node, dict) or node.get("t") != "module" or depth > _MAX_DEPTH:
            _bad()
        kind, args = node.get("kind"), self.decode(node.get("args"), depth + 1)
        if kind == "Linear":
            m = nn.Linear(int(args["in"]), int(args["out"]), bias=bool(args["bias"]))
        elif kind == "LoRAMiniLinear":
            base = self.module(node.get("children", {}).get("base"), depth + 1)
            m = LoRAMiniLinear(base, r=args["r"], a=args["a"], b=args["b"], alpha=args["alpha"], name=args["name"],
                               projection_seed=args["projection_seed"], aux_init=args["aux_init"],
                               use_rslora=args["use_rslora"])
            m.merged = bool(args["merged"])
        elif kind == "AuxFactors":  # its two buffers (the frozen aux pair) are filled in below
            m = AuxFactors(torch.empty(0), torch.empty(0))
        elif kind == "Block" and hasattr(checks, "_Block"):
            m = checks._Block(int(args["d"]))
        elif kind in ("ModuleDict", "Sequential", "ModuleList", "Identity", "Dropout"):
            m = {"ModuleDict": nn.ModuleDict, "Sequential": nn.Sequential, "ModuleList": nn.ModuleList,
                 "Identity": nn.Identity, "Dropout": nn.Dropout}[kind]()
        else:
            return _bad()
        m._modules.clear()
        for name, child in dict(node.get("children", {})).items():
            m._modules[str(name)] = self.module(child, depth + 1)
        with torch.no_grad():
            for table, target in (("params", m._parameters), ("buffers", m._buffers)):
                for name, t in dict(node.get(table, {})).items():
                    value = self.decode(t, depth + 1)
                    frozen = not value.is_floating_point() or name in _list(node.get("frozen", []))
                    target[str(name)] = nn.Parameter(value, requires_grad=not frozen) if table == "params" else value
        return m


def _bad():
    raise Refused(refusal("object"))


def _list(v) -> list:
    if type(v) is not list:
        _bad()
    return v


def load_state(module, node: dict, reader: Reader) -> None:
    """Make `module` (the judge's argument) look as the student's function left it: same structure and values."""
    rebuilt = reader.module(node)
    if type(rebuilt) is not type(module):
        _bad()
    module._modules.clear()
    module._modules.update(rebuilt._modules)
    module._parameters.clear()
    module._parameters.update(rebuilt._parameters)
    module._buffers.clear()
    module._buffers.update(rebuilt._buffers)


# ---------------------------------------------------------------- recording (in the student kernel)
def _is_function(value) -> bool:
    import functools

    return isinstance(value, (types.FunctionType, types.MethodType, functools.partial))


def _error_kind(err: BaseException) -> str:
    """A builtin exception's name, or 'Exception': a class the student named never reaches a message."""
    import builtins

    if isinstance(err, NotImplementedError):
        return "NotImplementedError"
    name = type(err).__name__
    return name if type(err) is getattr(builtins, name, None) else "Exception"


def _fingerprint(module) -> tuple:
    """What a function could change in a model: its layers' types and every parameter and buffer (copied)."""
    return ([(n, type(m)) for n, m in module.named_modules()],
            [(n, t.detach().clone()) for n, t in list(module.named_parameters()) + list(module.named_buffers())])


def _same(a: tuple, b: tuple) -> bool:
    import torch

    return a[0] == b[0] and len(a[1]) == len(b[1]) and all(
        n1 == n2 and t1.shape == t2.shape and t1.dtype == t2.dtype and torch.equal(t1, t2)
        for (n1, t1), (n2, t2) in zip(a[1], b[1]))


class _Taped:
    """The student's function as the kernel-side check calls it: each call's result and the state it left the
    module arguments in go on the tape."""

    def __init__(self, fn, tape: list, writer: Writer):
        self.fn, self.tape, self.writer = fn, tape, writer

    def __call__(self, *args):
        from torch import nn

        entry = {}
        self.tape.append(entry)
        before = [_fingerprint(a) if isinstance(a, nn.Module) else None for a in args]
        try:
            result = self.fn(*args)
        except BaseException as err:
            entry["raised"] = _error_kind(err)
            raise
        same = [i for i, a in enumerate(args) if result is a and isinstance(a, nn.Module)]
        entry["result"] = {"t": "arg", "i": same[0]} if same else self.writer_encode(result)
        # A model argument goes on the tape only when the function changed it (a training step, a merge).
        entry["after"] = [self.writer_encode(a) if b is not None and not _same(b, _fingerprint(a)) else None
                          for a, b in zip(args, before)]
        return result

    def writer_encode(self, value):
        try:
            return self.writer.encode(value)
        except Refused:
            return {"t": "refused", "base": _base_name(value)}


def answers_folder() -> Path:
    return Path(os.environ.get("LORAMINI_ANSWERS", ".loramini_answers"))


def _save(key: str, record: dict, writer: Writer) -> None:
    from safetensors.torch import save_file

    folder = answers_folder()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(writer.tensors, str(folder / f"{key}.safetensors"))
    (folder / f"{key}.json").write_text(json.dumps(record))


def _slot(value, writer: Writer, tape: list):
    """(what the judge gets, what the kernel-side check gets) for one argument."""
    if _is_function(value):
        return {"t": "function"}, _Taped(value, tape, writer)
    try:
        return writer.encode(value), value
    except Refused:
        return {"t": "refused", "base": _base_name(value)}, value


def record(key: str, check: str, thunk) -> None:
    """Write the arguments of one check call (`thunk()` → (args, kwargs)); drive the student's functions
    through the kernel's copy of `check` to fill the tape. Never raises: the verdict is the judge's."""
    import contextlib
    import io

    writer, tape, out = Writer(), [], {"check": check}
    try:
        args, kwargs = thunk()
    except BaseException as err:  # e.g. NameError: the answer was never set
        out["error"] = _error_kind(err)
        return _save(key, out, writer)
    slots = [_slot(a, writer, tape) for a in args]
    kw_slots = {k: _slot(v, writer, tape) for k, v in kwargs.items()}
    out["args"] = [s for s, _ in slots]
    out["kwargs"] = {k: s for k, (s, _) in kw_slots.items()}
    if any(isinstance(v, _Taped) for _, v in slots + list(kw_slots.values())):
        from .. import checks

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                getattr(checks, check)(*[v for _, v in slots], **{k: v for k, (_, v) in kw_slots.items()})
        except BaseException:  # a wrong answer, or a crash: the tape holds what happened
            pass
    out["tape"] = tape
    _save(key, out, writer)


def record_names(key: str, thunks: dict) -> None:
    """Write the values of the names a hidden test reads ({name: thunk}); a name that fails is left out."""
    writer, out = Writer(), {"names": {}}
    for name, thunk in thunks.items():
        try:
            value = thunk()
        except BaseException:
            continue
        try:
            out["names"][name] = writer.encode(value)
        except Refused:
            out["names"][name] = {"t": "refused", "base": _base_name(value)}
    _save(key, out, writer)


def read(folder: Path, key: str) -> tuple[dict, Reader]:
    """(the record, its Reader) of `key` in `folder`; Refused when missing or unreadable."""
    from safetensors.torch import load_file

    path = Path(folder) / f"{key}.json"
    try:
        data = json.loads(path.read_text())
        tensors = load_file(str(path.with_suffix(".safetensors")))
    except Exception as err:
        raise FileNotFoundError(key) from err
    if not isinstance(data, dict):
        _bad()
    return data, Reader(tensors)


class _Raised(Exception):
    """Carries the exception the student's function raised past Replay's own error handling."""


class Replay:
    """The student's function in the judge: each call returns what the tape says the real function returned
    (and leaves the module arguments as it left them). Student code never runs here."""

    def __init__(self, tape: list, reader: Reader):
        self.tape, self.reader = list(tape) if type(tape) is list else [], reader

    def __call__(self, *args):
        from .. import checks

        try:
            return self._replay(*args)
        except _Raised as err:  # what the student's function raised, as the check would have seen it
            raise err.args[0] from None
        except (checks.CheckFailed, NotImplementedError):
            raise
        except Exception:
            # Unreadable data, or a record that does not fit the check's call: a fail with a fixed message,
            # never an error the check would turn into a hint about the student's code.
            raise checks.CheckFailed(refusal("object")) from None

    def _replay(self, *args):
        import builtins

        from .. import checks

        if not self.tape:
            raise checks.CheckFailed("Your function was not called as the check expects (nothing was recorded): "
                                     "run the exercise cell as given.")
        entry = self.tape.pop(0)
        if not isinstance(entry, dict):
            _bad()
        if "raised" in entry:
            kind = getattr(builtins, str(entry["raised"]), None)
            kind = kind if isinstance(kind, type) and issubclass(kind, Exception) else Exception
            raise _Raised(kind("raised while being graded"))
        for arg, after in zip(args, entry.get("after") or []):
            if after is not None and hasattr(arg, "_modules"):
                load_state(arg, after, self.reader)
        result = entry.get("result")
        if isinstance(result, dict) and result.get("t") == "arg":
            return args[int(result["i"])]
        try:
            return self.reader.decode(result)
        except Refused as err:
            raise checks.CheckFailed(str(err)) from None
