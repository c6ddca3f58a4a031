"""Preparing a model for its family: the graph read once (:func:`inspect`), checked, and
turned into what a backend loads (:func:`prepare`): pruned to the family's final map, fp16
widened to fp32 off the GPU, the family's sigmoid and min-max rescale appended (so every
backend runs them), a symbolic batch dimension on a GPU; cached under ``<cache>/graphs``
with a record of the source graph's description, so later starts skip reading the file.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import ModelError
from ..io.atomic import atomic_writer
from .graph import (
    PREP_VERSION,
    fp16_to_fp32,
    graph_intact,
    make_batch_dynamic,
    prune_outputs,
    resizable_graph,
    save_model,
    write_record,
)
from .installed import sha256_file
from .registry import ModelSpec

if TYPE_CHECKING:
    import onnx

    from .families import Family, GraphInfo, Recipe

__all__ = ["Prepared", "append_activation", "content_sha256", "inspect", "prepare"]

_TYPES = {1: "float", 10: "float16", 11: "double", 2: "uint8", 3: "int8", 6: "int32", 7: "int64"}


def _dims(vi: onnx.ValueInfoProto) -> tuple[int | None, ...]:
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in vi.type.tensor_type.shape.dim
    )


def inspect(model: onnx.ModelProto) -> GraphInfo:
    """What a graph says about itself: its one input, its outputs (and the operator making
    each), its operators, fp16 weights, whether its upsampling targets can be rescaled, and
    its metadata (``cleancut.family`` names a family). A graph with other than one input is
    a :class:`~cleancut.errors.ModelError` saying what it has."""
    from .families import GraphInfo

    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        found = ", ".join(f"{i.name} {list(_dims(i))}" for i in inputs) or "none"
        raise ModelError(f"a segmentation graph needs exactly one input (an image); this one has: {found}")
    inp = inputs[0]
    producers = {o: node.op_type for node in graph.node for o in node.output}
    f16 = 10
    has_fp16 = any(t.data_type == f16 for t in graph.initializer) or any(
        attr.t.data_type == f16 for node in graph.node for attr in node.attribute if attr.type == 4
    )
    return GraphInfo(
        input_name=inp.name,
        input_shape=_dims(inp),
        input_type=_TYPES.get(inp.type.tensor_type.elem_type, str(inp.type.tensor_type.elem_type)),
        outputs=tuple(
            (o.name, _dims(o), _TYPES.get(o.type.tensor_type.elem_type, str(o.type.tensor_type.elem_type)))
            for o in graph.output
        ),
        producers={o.name: producers.get(o.name, "") for o in graph.output},
        op_types=frozenset(node.op_type for node in graph.node),
        has_fp16=has_fp16,
        resizable=resizable_graph(model),
        metadata={p.key: p.value for p in model.metadata_props},
    )


def append_activation(model: onnx.ModelProto, *, sigmoid: bool, minmax: bool) -> onnx.ModelProto:
    """End the (single-output) graph with a sigmoid and/or a min-max rescale of its map
    (``(y − min) / (max − min)`` over the whole map), under the output's own name."""
    from onnx import helper

    graph = model.graph
    if len(graph.output) != 1:
        raise ModelError("append_activation needs a graph with one output (prune it first)")
    if not (sigmoid or minmax):
        return model
    name = graph.output[0].name
    raw = f"{name}__cleancut_raw"
    for node in graph.node:  # the map's producer (and any reader) now uses the raw name
        node.output[:] = [raw if o == name else o for o in node.output]
        node.input[:] = [raw if i == name else i for i in node.input]
    cur = raw
    nodes = []
    if sigmoid:
        nxt = name if not minmax else f"{name}__cleancut_sigmoid"
        nodes.append(helper.make_node("Sigmoid", [cur], [nxt], name="cleancut_sigmoid"))
        cur = nxt
    if minmax:
        # (y − min) / (max − min); a constant map (max = min) is left as it is, not 0/0
        import numpy as np
        from onnx import numpy_helper

        elem = graph.output[0].type.tensor_type.elem_type
        kind = {10: np.float16, 11: np.float64}.get(elem, np.float32)
        parts = ("min", "max", "num", "den", "flat", "safe", "q", "zero", "one")
        t = {k: f"{name}__cleancut_{k}" for k in parts}
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(0, kind), t["zero"]),
                numpy_helper.from_array(np.array(1, kind), t["one"]),
            ]
        )
        nodes += [
            helper.make_node("ReduceMin", [cur], [t["min"]], name="cleancut_min", keepdims=1),
            helper.make_node("ReduceMax", [cur], [t["max"]], name="cleancut_max", keepdims=1),
            helper.make_node("Sub", [cur, t["min"]], [t["num"]], name="cleancut_sub"),
            helper.make_node("Sub", [t["max"], t["min"]], [t["den"]], name="cleancut_range"),
            helper.make_node("Equal", [t["den"], t["zero"]], [t["flat"]], name="cleancut_flat"),
            helper.make_node("Where", [t["flat"], t["one"], t["den"]], [t["safe"]], name="cleancut_safe"),
            helper.make_node("Div", [t["num"], t["safe"]], [t["q"]], name="cleancut_rescale"),
            helper.make_node("Where", [t["flat"], cur, t["q"]], [name], name="cleancut_keep_flat"),
        ]
    graph.node.extend(nodes)
    del graph.value_info[:]  # the raw map's recorded shape keeps no stale name
    return model


def _content_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def content_sha256(path: Path, settings: Settings) -> str:
    """The SHA-256 of a model file, remembered in ``<cache>/hashes`` while the file's size,
    times and inode are unchanged (a 1 GB model is not hashed on every start)."""
    import hashlib

    name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    stamp = settings.cache_dir / "hashes" / f"{name}.json"
    try:
        key = _content_key(path)
    except OSError as exc:
        raise ModelError(f"cannot read the model {path}: {exc}") from exc
    try:
        record = json.loads(stamp.read_text())
        if record.get("key") == key and isinstance(record.get("sha256"), str):
            return str(record["sha256"])
    except (OSError, ValueError):
        pass
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read the model {path}: {exc}") from exc
    try:
        with atomic_writer(stamp) as f:
            f.write(json.dumps({"path": str(path), "key": key, "sha256": digest}).encode())
    except OSError:  # a read-only cache: hash again next time
        pass
    return digest


@dataclass(frozen=True)
class Prepared:
    """The graph a backend loads for one model, and what it was made from."""

    path: Path
    #: SHA-256 of the prepared graph (what runs): the self-check's key
    sha256: str
    #: the model file's own description (inputs, outputs, operators, metadata)
    info: GraphInfo
    family: Family

    @functools.cached_property
    def recipe(self) -> Recipe:
        return self.family.recipe(self.info)


def _family_for(spec: ModelSpec, info: GraphInfo) -> Family:
    from .families import family_names, get_family

    name = spec.family or info.metadata.get("cleancut.family") or info.metadata.get("family")
    if not name:
        raise ModelError(
            f"which family is {spec.description or spec.name}? give --model-family "
            f"(model_family=) one of: {', '.join(family_names())}, or record it in the graph's "
            "metadata as cleancut.family"
        )
    return get_family(name)


def prepare(spec: ModelSpec, source: Path, source_sha256: str, settings: Settings, *, gpu: bool) -> Prepared:
    """The graph to load for ``spec`` from its verified file ``source``: checked by its
    family, pruned to the final map, widened to fp32 off the GPU, with the family's sigmoid
    and rescale appended, with a symbolic batch dimension on a GPU; built once and cached
    under ``<cache>/graphs`` (the file itself where nothing needs changing)."""
    from .families import GraphInfo

    variant = "gpu" if gpu else "cpu"
    tag = f"{spec.name}.{source_sha256[:16]}.v{PREP_VERSION}.{variant}"
    target = settings.cache_dir / "graphs" / f"{tag}.onnx"
    record_path = settings.cache_dir / "graphs" / f"{tag}.json"
    try:
        record = json.loads(record_path.read_text())
        info = GraphInfo.from_json(record["info"])
        family = _family_for(spec, info)
        if record.get("family") == family.name:
            if record.get("same_file"):
                return Prepared(source, source_sha256, info, family)
            if graph_intact(target):
                return Prepared(target, str(record["sha256"]), info, family)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    import onnx

    try:
        model = onnx.load(str(source))
    except Exception as exc:
        raise ModelError(f"cannot read {source} as an ONNX graph: {exc}") from exc
    info = inspect(model)
    family = _family_for(spec, info)
    family.check(info)
    recipe = family.recipe(info)
    output = family.output_name(info)
    changed = False
    if len(info.outputs) > 1:
        model = prune_outputs(model, keep=(output,))
        changed = True
    if not gpu and info.has_fp16:
        model = fp16_to_fp32(model)
        changed = True
    if recipe.activation == "sigmoid" or recipe.rescale == "minmax":
        model = append_activation(
            model, sigmoid=recipe.activation == "sigmoid", minmax=recipe.rescale == "minmax"
        )
        changed = True
    if gpu:
        model = make_batch_dynamic(model)
        changed = True
    if changed:
        size, digest = save_model(model, target)
        write_record(target, {"size": size, "sha256": digest, "prep_version": PREP_VERSION})
    else:
        digest = source_sha256
    with atomic_writer(record_path) as f:
        record = {
            "info": info.to_json(),
            "family": family.name,
            "sha256": digest,
            "same_file": not changed,
            "source": str(source),
            "source_sha256": source_sha256,
        }
        f.write(json.dumps(record, indent=2).encode())
    return Prepared(target if changed else source, digest, info, family)
