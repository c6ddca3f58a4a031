"""Graph surgery on ONNX models, and the derived and resized graphs built with it.

Pruning to the outputs that are read (IS-Net's exports have 12 more outputs than the final
map, side maps and feature maps, some 64×512×512, that cost time and memory), widening fp16
weights to fp32 (onnxruntime's CPU kernels compute fp16 in fp32 anyway, inserting casts;
measured 1.06–1.24× slower), a symbolic batch dimension, and IS-Net's upsampling targets
rescaled for another input size. Built graphs are cached under ``<cache>/graphs`` with a
record (size, SHA-256), checked like models. :mod:`cleancut.models.prepare` puts these
together for a model's family.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
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

__all__ = [
    "OUTPUT_NAME",
    "PREP_VERSION",
    "ensure_derived",
    "fp16_to_fp32",
    "graph_intact",
    "make_batch_dynamic",
    "prune_outputs",
    "resizable_graph",
    "save_model",
    "sized_graph",
    "with_input_size",
    "write_record",
]

log = logging.getLogger(__name__)

OUTPUT_NAME = "output"
INPUT_NAME = "input"
#: Bump when the preparation changes, so cached graphs are rebuilt.
#: 2: pruned graphs are written in topological order. 3: families (widening, activation).
#: 4: a constant map keeps its value through the min-max rescale.
PREP_VERSION = 4


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


def save_model(model: onnx.ModelProto, target: Path) -> tuple[int, str]:
    import hashlib

    data = model.SerializeToString()
    with atomic_writer(target) as f:
        f.write(data)
    return len(data), hashlib.sha256(data).hexdigest()


def write_record(target: Path, record: dict[str, object]) -> None:
    with atomic_writer(target.with_name(target.name + ".json")) as f:
        f.write(json.dumps(record, indent=2, sort_keys=True).encode())


def _record_current(target: Path, base_spec: ModelSpec) -> bool:
    """Whether the sidecar says the derived file was built by this preparation from this base."""
    try:
        record = json.loads(target.with_name(target.name + ".json").read_text())
        return bool(
            record["prep_version"] == PREP_VERSION
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
    # bumping PREP_VERSION must reach caches that already hold a verified derived file.
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
    size, digest = save_model(model, target)
    write_record(
        target,
        {
            "name": spec.name,
            "derived_from": base_spec.name,
            "base_sha256": sha256_file(base),
            "size": size,
            "sha256": digest,
            "prep_version": PREP_VERSION,
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


def graph_intact(target: Path) -> bool:
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

    def scale(tensor: onnx.TensorProto, first: int) -> None:
        value = numpy_helper.to_array(tensor)
        scaled = value.copy()
        scaled[first:] = value[first:] * size // base
        if not np.array_equal(scaled[first:] * base, value[first:] * size):
            raise ModelError(
                f"input size {size} does not scale the Resize sizes {value.tolist()} to whole pixels"
            )
        tensor.CopyFrom(numpy_helper.from_array(scaled.astype(value.dtype), tensor.name))

    targets = resize_targets(model)
    if targets is None:
        raise ModelError(
            "unexpected graph: no Resize output sizes to rescale, or one takes its sizes from "
            "something other than a constant [N, C, H, W] or a Concat of constants"
        )
    for tensor, first in targets:
        scale(tensor, first)
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
    target = settings.cache_dir / "graphs" / f"{path.stem}.{size}px.v{PREP_VERSION}.onnx"
    if graph_intact(target):
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
    nbytes, digest = save_model(model, target)
    write_record(
        target,
        {
            "size": nbytes,
            "sha256": digest,
            "prep_version": PREP_VERSION,
            "input_size": size,
            "base": path.name,
            "base_size": path.stat().st_size,
            "base_sha256": sha256_file(path),
        },
    )
    return target


def resize_targets(model: onnx.ModelProto) -> list[tuple[Any, int]] | None:
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


def resizable_graph(model: onnx.ModelProto) -> bool:
    return resize_targets(model) is not None
