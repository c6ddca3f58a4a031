"""Graph preparation: what a backend loads, made once per machine from a model file.

A model file is read once (:func:`inspect`: its input, outputs, operators, metadata) and
checked by its family. The graph a backend loads is then prepared from it, as the family's
recipe says: pruned to the final map (IS-Net's exports have 12 more outputs, side maps and
feature maps, some 64×512×512, that cost time and memory), fp16 weights widened to fp32 on
a CPU (onnxruntime's CPU kernels compute fp16 in fp32 anyway, inserting casts; measured
1.06–1.24× slower), a sigmoid and a min-max rescale appended where the family's map needs
them (so every backend runs them), and a symbolic batch dimension on a GPU. Prepared graphs
are cached under ``<cache>/graphs`` with a record of what they are, checked like models.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import CancelledError, ModelError
from ..io.atomic import atomic_writer
from ..progress import ProgressCallback
from .download import fetch_published
from .installed import installed_path, sha256_file, verify_file, verify_installed
from .registry import ModelSpec, resolve_model

if TYPE_CHECKING:
    import onnx

    from .families import Family, GraphInfo, Recipe

__all__ = [
    "OUTPUT_NAME",
    "append_activation",
    "ensure_derived",
    "fp16_to_fp32",
    "inspect",
    "make_batch_dynamic",
    "prepare",
    "prune_outputs",
]

log = logging.getLogger(__name__)

OUTPUT_NAME = "output"
INPUT_NAME = "input"
#: Bump when the preparation changes, so cached graphs are rebuilt.
#: 2: pruned graphs are written in topological order. 3: families (widening, activation).
#: 4: a constant map keeps its value through the min-max rescale.
_PREP_VERSION = 4


def _node_inputs(node: onnx.NodeProto) -> list[str]:
    """The names a node reads, including outer names read by its subgraphs (If/Loop/Scan)."""
    import onnx

    names = [i for i in node.input if i]
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            subgraphs = [attr.g]
        elif attr.type == onnx.AttributeProto.GRAPHS:
            subgraphs = list(attr.graphs)
        else:
            continue
        for sub in subgraphs:
            for sub_node in sub.node:
                names.extend(_node_inputs(sub_node))
    return names


def _topological_order(nodes: Any) -> list[int]:
    """Node indices, each after the producers of its inputs, otherwise in the given order."""
    producer = {o: idx for idx, node in enumerate(nodes) for o in node.output if o}
    deps = [
        [producer[n] for n in _node_inputs(node) if n in producer and producer[n] != idx]
        for idx, node in enumerate(nodes)
    ]
    order: list[int] = []
    state = [0] * len(nodes)  # 0 unvisited, 1 on the stack, 2 emitted
    for root in range(len(nodes)):
        stack = [(root, False)]
        while stack:  # iterative depth-first search: graphs can be deeper than the recursion limit
            idx, expanded = stack.pop()
            if expanded:
                if state[idx] != 2:
                    state[idx] = 2
                    order.append(idx)
                continue
            if state[idx] != 0:
                continue  # emitted already, or a cycle (left for the runtime to report)
            state[idx] = 1
            stack.append((idx, True))
            stack.extend((d, False) for d in reversed(deps[idx]) if state[d] == 0)
    return order


def prune_outputs(model: onnx.ModelProto, keep: Iterable[str] = (OUTPUT_NAME,)) -> onnx.ModelProto:
    """Drop every graph output but ``keep`` and every node they do not depend on.

    The kept nodes are written in topological order, as the ONNX spec (and ``onnx.checker``)
    requires; the published graphs list some producers after their consumers.
    """
    import onnx

    keep = list(keep)
    graph = model.graph
    names = {o.name for o in graph.output}
    missing = [k for k in keep if k not in names]
    if missing:
        raise ModelError(f"the graph has no output named {missing}; it has {sorted(names)}")
    # Walk back from the kept outputs through producers. The published graphs do not list
    # their nodes in topological order, so a single reverse sweep is not enough.
    producer = {o: idx for idx, node in enumerate(graph.node) for o in node.output if o}
    needed = set(keep)
    keep_nodes: set[int] = set()
    todo = list(keep)
    while todo:
        idx_or_none = producer.get(todo.pop())
        if idx_or_none is None or idx_or_none in keep_nodes:
            continue  # a graph input, an initializer, or already visited
        keep_nodes.add(idx_or_none)
        for name in _node_inputs(graph.node[idx_or_none]):
            if name not in needed:
                needed.add(name)
                todo.append(name)

    # Delete in place, back to front: protobuf repeated fields invalidate held references
    # when cleared, so the kept messages are never copied out and back.
    def drop(field: Any, keep_item: Callable[[int, Any], bool]) -> None:
        for i in reversed(range(len(field))):
            if not keep_item(i, field[i]):
                del field[i]

    drop(graph.node, lambda i, _: i in keep_nodes)
    drop(graph.output, lambda _, o: o.name in keep)
    drop(graph.initializer, lambda _, t: t.name in needed)
    drop(graph.value_info, lambda _, v: v.name in needed)

    order = _topological_order(graph.node)
    if order != list(range(len(graph.node))):
        nodes = []
        for idx in order:
            node = onnx.NodeProto()
            node.CopyFrom(graph.node[idx])
            nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)
    return model


def fp16_to_fp32(model: onnx.ModelProto) -> onnx.ModelProto:
    """Widen every fp16 weight, constant, cast target and declared tensor type to fp32.

    The values are exactly representable, so the fp32 graph computes what the fp16 graph
    approximates; on CPUs without native fp16 it is also faster (measured on 2 cores: 1.6 s vs 1.9 s a pass).
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT

    def widen(t: onnx.TensorProto) -> onnx.TensorProto:
        if t.data_type != f16:
            return t
        arr = numpy_helper.to_array(t).astype(np.float32)
        return numpy_helper.from_array(arr, t.name)

    graph = model.graph
    new_inits = [widen(t) for t in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == f16:
                attr.i = f32
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == f16:
                attr.t.CopyFrom(widen(attr.t))
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.type.tensor_type.elem_type == f16:
            vi.type.tensor_type.elem_type = f32
    return model


def _save_atomic(model: onnx.ModelProto, target: Path) -> tuple[int, str]:
    import hashlib

    data = model.SerializeToString()
    with atomic_writer(target) as f:
        f.write(data)
    return len(data), hashlib.sha256(data).hexdigest()


def _write_record(target: Path, record: dict[str, object]) -> None:
    with atomic_writer(target.with_name(target.name + ".json")) as f:
        f.write(json.dumps(record, indent=2, sort_keys=True).encode())


def _record_current(target: Path, base_spec: ModelSpec) -> bool:
    """Whether the sidecar says the derived file was built by this preparation from this base."""
    try:
        record = json.loads(target.with_name(target.name + ".json").read_text())
        return bool(
            record["prep_version"] == _PREP_VERSION
            and record["derived_from"] == base_spec.name
            and (base_spec.sha256 is None or record["base_sha256"] == base_spec.sha256)
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_derived(
    spec: ModelSpec,
    settings: Settings,
    *,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    force: bool = False,
) -> Path:
    """Build (once) and return a model derived from a published one (``isnet`` from fp16)."""
    assert spec.derived_from is not None
    base_spec = resolve_model(spec.derived_from)
    target = installed_path(spec, settings)
    # A derived file built by an older preparation (or from other base weights) is rebuilt:
    # bumping _PREP_VERSION must reach caches that already hold a verified derived file.
    if not force and _record_current(target, base_spec) and verify_installed(spec, target):
        return target
    import onnx  # only when building: the import alone costs ~0.2 s of every cold start

    base = fetch_published(base_spec, settings, progress=progress, cancel=cancel)
    if cancel is not None and cancel():
        raise CancelledError(f"cancelled before deriving {spec.name}")
    key = spec.progress_key
    if progress is not None:
        progress(key, 0, 1)
    log.info("deriving %s from %s", spec.name, base_spec.name)
    try:
        model = onnx.load(str(base))
    except Exception as exc:
        raise ModelError(f"cannot read {base}: {exc}") from exc
    model = fp16_to_fp32(prune_outputs(model))
    size, digest = _save_atomic(model, target)
    _write_record(
        target,
        {
            "name": spec.name,
            "derived_from": base_spec.name,
            "base_sha256": sha256_file(base),
            "size": size,
            "sha256": digest,
            "prep_version": _PREP_VERSION,
            "onnx": onnx.__version__,
        },
    )
    if progress is not None:
        progress(key, 1, 1)
    return target


def make_batch_dynamic(model: onnx.ModelProto, name: str = "N") -> onnx.ModelProto:
    """Give the input and output a symbolic batch dimension (the published graphs fix it at
    1). The graph's Resize sizes come from Shape ops, so any batch size then runs; outputs
    are identical to one-by-one runs (checked bit for bit on the CPU)."""
    graph = model.graph
    for vi in [*graph.input, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = name
    del graph.value_info[:]  # intermediate shapes recorded with batch 1 would contradict it
    return model


def _graph_intact(target: Path) -> bool:
    try:
        record = json.loads(target.with_name(target.name + ".json").read_text())
        size, digest = int(record["size"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # built before records existed, or the record is damaged: rebuild
    return verify_file(target, size, digest)


def with_input_size(model: onnx.ModelProto, size: int, base: int = 1024) -> onnx.ModelProto:
    """The same network for a ``size``² input instead of ``base``².

    IS-Net is fully convolutional, but the exported graphs fix every upsampling target: each
    ``Resize`` takes its output size from a constant ``[h, w]`` written for a 1024² input
    (32 … 1024), concatenated to the batch and channel dimensions — or, in the quantised
    graph, from one constant ``[N, C, h, w]``. Those pixel sizes are scaled by ``size / base``
    and the input and output shapes set to ``size``; ``size`` must keep every one of them
    whole (a multiple of 32), which also keeps the max-pooling pyramid exact. Weights are
    untouched.
    """
    import numpy as np
    from onnx import numpy_helper

    if size % 32 or size < 32:
        raise ModelError(f"the network input must be a multiple of 32 pixels, got {size}")
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    constants = {id(n): n for n in graph.node if n.op_type == "Constant"}
    initializers = {t.name: t for t in graph.initializer}
    done: set[str] = set()

    def scale(tensor: onnx.TensorProto, what: str, first: int) -> None:
        value = numpy_helper.to_array(tensor)
        scaled = value.copy()
        scaled[first:] = value[first:] * size // base
        if not np.array_equal(scaled[first:] * base, value[first:] * size):
            raise ModelError(f"input size {size} does not scale {what} {value.tolist()} to whole pixels")
        tensor.CopyFrom(numpy_helper.from_array(scaled.astype(value.dtype), tensor.name))

    rewritten = 0
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        sizes = node.input[3]
        if sizes in done:  # one target shared by several Resize nodes is scaled once
            continue
        source = producers.get(sizes)
        if sizes in initializers:
            folded = initializers[sizes]
        elif source is not None and id(source) in constants:
            folded = source.attribute[0].t
        else:
            folded = None
        if folded is not None:
            # The whole [N, C, H, W] target is one constant (the quantised graph's exporter
            # folded the Concat): its last two entries are the pixels.
            if len(folded.dims) != 1 or folded.dims[0] != 4:
                raise ModelError(f"unexpected graph: Resize {node.name} sizes are not [N, C, H, W]")
            scale(folded, f"Resize {node.name} sizes", 2)
            rewritten += 1
        elif source is not None and source.op_type == "Concat":
            for name in source.input:
                const = producers.get(name)
                if const is not None and id(const) in constants:
                    scale(const.attribute[0].t, f"Resize {node.name} sizes", 0)
                    rewritten += 1
        else:
            raise ModelError(f"unexpected graph: Resize {node.name} sizes are not a Concat or a constant")
        done.add(sizes)
    if rewritten == 0:
        raise ModelError("unexpected graph: no Resize output sizes to rescale")
    for vi in [*graph.input, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 4:
            for d in dims[2:]:
                if d.HasField("dim_value"):
                    d.dim_value = d.dim_value * size // base
    del graph.value_info[:]  # shapes recorded for the old size would contradict the new one
    return model


def sized_graph(path: Path, size: int, settings: Settings, *, base: int = 1024) -> Path:
    """``path`` for a ``size``² input (see :func:`with_input_size`), built once and cached
    under ``<cache>/graphs`` beside the other prepared graphs, checked like them."""
    target = settings.cache_dir / "graphs" / f"{path.stem}.{size}px.v{_PREP_VERSION}.onnx"
    if _graph_intact(target):
        try:
            record = json.loads(target.with_name(target.name + ".json").read_text())
            if record.get("base_size") == path.stat().st_size:
                return target
        except (OSError, ValueError):
            pass
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    model = with_input_size(model, size, base)
    nbytes, digest = _save_atomic(model, target)
    _write_record(
        target,
        {
            "size": nbytes,
            "sha256": digest,
            "prep_version": _PREP_VERSION,
            "input_size": size,
            "base": path.name,
            "base_size": path.stat().st_size,
            "base_sha256": sha256_file(path),
        },
    )
    return target


# --------------------------------------------------------------------------- families

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
        resizable=_resizable(model),
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


def _resize_targets(model: onnx.ModelProto) -> list[tuple[Any, int]] | None:
    """The constants holding IS-Net-style upsampling targets (tensor, first pixel index), or
    ``None`` when a Resize takes its size from anything else (the graph cannot be resized)."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    initializers = {t.name: t for t in graph.initializer}
    targets: list[tuple[Any, int]] = []
    done: set[str] = set()
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        sizes = node.input[3]
        if sizes in done:  # one target shared by several Resize nodes is scaled once
            continue
        done.add(sizes)
        source = producers.get(sizes)
        if sizes in initializers:
            folded: Any = initializers[sizes]
        elif source is not None and source.op_type == "Constant":
            folded = source.attribute[0].t
        else:
            folded = None
        if folded is not None:
            # the whole [N, C, H, W] target is one constant (the quantised graph's exporter
            # folded the Concat): its last two entries are the pixels
            if len(folded.dims) != 1 or folded.dims[0] != 4:
                return None
            targets.append((folded, 2))
        elif source is not None and source.op_type == "Concat":
            for name in source.input:
                const = producers.get(name)
                if const is not None and const.op_type == "Constant":
                    targets.append((const.attribute[0].t, 0))
        else:
            return None
    return targets or None


def _resizable(model: onnx.ModelProto) -> bool:
    return _resize_targets(model) is not None


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

    @property
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
    tag = f"{spec.name}.{source_sha256[:16]}.v{_PREP_VERSION}.{variant}"
    target = settings.cache_dir / "graphs" / f"{tag}.onnx"
    record_path = settings.cache_dir / "graphs" / f"{tag}.json"
    try:
        record = json.loads(record_path.read_text())
        info = GraphInfo.from_json(record["info"])
        family = _family_for(spec, info)
        if record.get("family") == family.name:
            if record.get("same_file"):
                return Prepared(source, source_sha256, info, family)
            if _graph_intact(target):
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
        size, digest = _save_atomic(model, target)
        _write_record(target, {"size": size, "sha256": digest, "prep_version": _PREP_VERSION})
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
