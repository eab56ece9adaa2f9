"""Method names -> ``MethodSpec``: the built-ins, other packages' entry points, ``module:attr``.

``method=NAME`` resolves, in order: a built-in (``BUILTIN``), an entry point of the group
``lmms_sttm.methods`` named ``NAME`` (another package's method), then ``NAME`` of the form
``package.module:attr`` (imported as is). Nothing is imported until a run names a method, so
lmms-eval's start-up never pays for (or fails on) a method it does not run. A spec registered with
``lmms_sttm.api.register`` in the running process is found by name too.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from lmms_sttm.methods.spec import MethodSpec

GROUP = "lmms_sttm.methods"
#: the built-in methods: one line each (the spec lives in its own module)
BUILTIN = {
    "none": "lmms_sttm.methods.none:SPEC",
    "sttm": "lmms_sttm.methods.sttm:SPEC",
    "tome": "lmms_sttm.methods.tome:SPEC",
    "dycoke_stage1": "lmms_sttm.methods.dycoke:STAGE1",
    "dycoke": "lmms_sttm.methods.dycoke:FULL",
    "fastv": "lmms_sttm.methods.fastv:SPEC",
    "framefusion": "lmms_sttm.methods.framefusion:SPEC",
    "pool": "lmms_sttm.methods.pool:SPEC",
    "evs": "lmms_sttm.methods.evs:SPEC",
    "vidcom2": "lmms_sttm.methods.vidcom2:SPEC",
    "fastvid": "lmms_sttm.methods.fastvid:SPEC",
    "holitom": "lmms_sttm.methods.holitom:SPEC",
    "flashvid": "lmms_sttm.methods.flashvid:SPEC",
}
_REGISTERED: dict[str, MethodSpec] = {}


class MethodNotFound(ValueError):
    """``method=`` names nothing this process can find."""


def register(spec: MethodSpec) -> MethodSpec:
    """Makes ``spec`` available by its name in this process (tests, notebooks); returns it."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"register() takes a MethodSpec, got {type(spec).__name__}")
    if spec.name in BUILTIN:
        raise ValueError(f"method name {spec.name!r} is a built-in; choose another name")
    _REGISTERED[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def _load(target: str, name: str) -> MethodSpec:
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except Exception as e:  # a broken third-party method fails the run that names it, with the reason
        raise ValueError(f"method={name}: cannot load {target}: {type(e).__name__}: {e}") from e
    if callable(obj) and not isinstance(obj, MethodSpec):
        try:
            obj = obj()
        except Exception as e:
            raise ValueError(f"method={name}: {target}() raised {type(e).__name__}: {e}") from e
    if not isinstance(obj, MethodSpec):
        raise ValueError(
            f"method={name}: {target} is a {type(obj).__name__}, not an lmms_sttm.api.MethodSpec"
        )
    return obj


def plugin_names() -> dict[str, str]:
    """``{name: "module:attr"}`` of the entry points in group ``lmms_sttm.methods`` (nothing imported)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """Every method name this process can run without a ``module:attr`` path."""
    return [*BUILTIN, *sorted(set(plugin_names()) - set(BUILTIN)), *sorted(_REGISTERED)]


def get(name: str) -> MethodSpec:
    """The spec named ``name``; raises ``MethodNotFound`` (a ``ValueError``) naming what exists."""
    if not isinstance(name, str) or not name:
        raise MethodNotFound(f"model_args method={name!r} is not accepted; use one of {names()}")
    if name in BUILTIN:
        return _load(BUILTIN[name], name)
    if name in _REGISTERED:
        return _REGISTERED[name]
    plugins = plugin_names()
    if name in plugins:
        spec = _load(plugins[name], name)
    elif ":" in name:
        return _load(name, name)  # recorded under its own name (spec.name)
    else:
        raise MethodNotFound(
            f"model_args method={name!r} is not accepted; use one of {names()} "
            f"(or another package's method as method=package.module:NAME)"
        )
    if spec.name != name:
        raise ValueError(f"entry point {name!r} of group {GROUP} holds a spec named {spec.name!r}")
    return spec
