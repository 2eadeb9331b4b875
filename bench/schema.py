"""What the store holds: one schema per kind of row, shared by the stages that write rows and
the pages that read them, and the outcomes a row can have.

``Store.put`` checks every row against its stage's schema: a measured row (ok, diverged) has
every field; any row has no field its schema lacks, but for a failure's ``note``/``error``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypedDict


class Status(str, Enum):
    """A row's outcome; equal to, stored and printed as its value."""

    OK = "ok"
    DIVERGED = "diverged"  # training: the loss became NaN or infinite
    OOM = "oom"  # out of memory at this batch size
    SKIPPED = "skipped"  # not measured, and the note says why (a step too slow)
    NOT_APPLICABLE = "n/a"  # cannot be measured (batch norm training on a batch of one)
    ERROR = "error"
    TIMEOUT = "timeout"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


MEASURED = frozenset({Status.OK, Status.DIVERGED})  # rows with every field of their schema
FINAL = frozenset({Status.OK, Status.OOM, Status.SKIPPED, Status.NOT_APPLICABLE})  # kept by reruns
FAILED = frozenset({Status.ERROR, Status.TIMEOUT})  # measured again by the next run

# What a speed or training row's peak memory is, by device.
RESIDENT = "resident: peak RSS growth of the process"
ALLOCATED = "allocated: torch.cuda.max_memory_allocated growth"


class ProfileRow(TypedDict):
    """``profile``: counted on the meta device at one input side and batch size (bytes in
    bytes, MACs and FLOPs per image unless named otherwise)."""

    model: str
    image_size: int
    in_channels: int
    batch_size: int
    params: int
    params_trainable: int
    params_conv: int
    params_linear: int
    params_norm: int
    params_other: int
    param_bytes_fp32: int
    param_bytes_bf16: int
    fwd_flops_per_image: int
    bwd_flops_per_image: int
    fwd_conv_macs_per_image: float
    fwd_linear_macs_per_image: float
    fwd_other_macs_per_image: float
    bwd_conv_macs_per_image: float
    bwd_linear_macs_per_image: float
    bwd_other_macs_per_image: float
    fvcore_fwd_macs_per_image: int
    flopcounter_fwd_flops: int
    flopcounter_bwd_flops: int
    counters_agree: bool
    uncounted_ops: str
    fwd_bytes_moved: int
    weight_bytes: int
    grad_bytes: int
    saved_activation_bytes_batch1: int | None
    saved_activation_bytes: int
    infer_peak_bytes_batch1: int
    infer_peak_bytes: int
    train_bytes_est_sgd: int
    train_bytes_est_sgd_momentum: int
    train_bytes_est_adam: int
    infer_bytes_est: int
    infer_bytes_est_batch1: int
    infer_bytes_tracked: int
    infer_bytes_tracked_batch1: int
    train_bytes_est_sgd_batch1: int | None
    train_bytes_tracked_sgd: int
    train_bytes_tracked_sgd_batch1: int | None
    conv_work_block: int | None  # oneDNN's channel block the working memory assumed; None: none
    input_bytes: int
    min_image_size: int
    fwd_macs_per_image: float
    bwd_macs_per_image: float
    fwd_flops_per_byte: float


class Timing(TypedDict):
    """What every timed row carries: the distribution of its timed steps (bench/timing.py)."""

    n: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    cv: float
    images_per_s: float


class At(TypedDict):
    """One (network, batch size) point of a sweep: where it was measured, and its outcome."""

    model: str
    image_size: int
    in_channels: int
    batch_size: int
    status: str
    note: str
    device_name: str


class Point(Timing, At):
    """A timed point, and how it was timed."""

    time_cap_s: float
    max_step_s: float


class SpeedRow(Point):
    """``speed``: one (network, mode, batch size) point of a timed sweep."""

    mode: str
    device: str
    precision: str
    channels_last: bool
    compiled: bool
    cudnn_allow_tf32: bool  # what fp32 layers may run as on a GPU (bench.device.fp32_math)
    float32_matmul_precision: str
    cudnn_benchmark: bool
    peak_bytes: int
    memory_kind: str
    flops_per_image: int
    achieved_flops_per_s: float
    peak_flops_per_s: float
    peak_source: str
    mfu: float


class MemoryRow(At):
    """``memory``: the CPU allocator's peak through one real training step and one inference
    pass of a network at one batch size (bench/allocator.py); bytes include what the step
    finds resident (weights, buffers, input, labels). A training step that batch norm cannot
    take (a batch of one) has None in its training fields and says so in its note."""

    train_bytes: int | None
    train_peak_op: str | None  # the op running at the peak (bench.allocator.Peak)
    train_peak_op_bytes: int | None  # what it had allocated and not yet freed then
    infer_bytes: int
    infer_peak_op: str
    infer_peak_op_bytes: int


class OnnxRow(Point):
    """``onnx``: one network exported, checked and timed under onnxruntime at one batch size,
    beside PyTorch on the same inputs."""

    export_s: float
    onnx_bytes: int
    checker: str
    max_abs_diff: float
    parity_ok: bool
    provider: str
    onnxruntime: str  # its version
    ort_threads: int
    torch_images_per_s: float
    torch_cv: float
    torch_status: str
    ort_over_torch: float


class TrainRow(TypedDict):
    """``train``: one run's outcome, its settings and how the pages describe it (``preset`` to
    ``fast_recipe``, from ``bench.recipes.describe``)."""

    model: str
    lr: float
    batch_size: int
    resize: int | None
    seed: int
    epochs: int | None
    technique_settings: dict[str, Any]
    status: str
    evaluations: int
    test_acc: float
    best_test_acc: float
    train_loss: float
    train_s: float
    wall_s: float
    images_per_s: float
    peak_bytes: int
    memory_kind: str
    device_name: str
    deterministic_algorithms: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool
    cudnn_allow_tf32: bool  # what fp32 layers may run as on a GPU (bench.device.fp32_math)
    float32_matmul_precision: str
    time_to_80_s: float | None
    time_to_85_s: float | None
    time_to_90_s: float | None
    time_to_92_s: float | None
    time_to_94_s: float | None
    autocast: str
    compile_s: float | None  # torch.compile's warm-up before the clock (None: eager)
    params: int
    fwd_macs_per_image: int
    techniques: str
    preset: str
    pipeline: str
    work: str
    test_set: str
    changes: list[str] | None
    fast_recipe: bool


class PipelineRow(Timing):
    """``pipeline``: training throughput of one network under one feed."""

    model: str
    resize: int | None
    feed: str
    batch_ms: float | None


class LayersRow(TypedDict, total=False):
    """``layers``: one single-layer case of chapter 7, by formula, counted and timed (each
    exercise fills the fields it needs)."""

    formula_h: int
    formula_w: int
    built_h: int
    built_w: int
    c_i: int
    c_o: int
    kernel: int
    side: int
    padding: int
    stride: int
    out_side: int
    fwd_macs_formula: int
    fwd_macs_counted: float
    bwd_macs_formula: int
    bwd_macs_counted: float
    weight_bytes_formula: int
    weight_bytes_counted: int
    output_bytes_formula: int
    saved_bytes_formula: int
    saved_bytes_counted: float
    fwd_ms: float  # median
    fwd_iqr_ms: float  # interquartile range
    fwd_bwd_ms: float
    fwd_bwd_iqr_ms: float
    batch_size: int
    device: str
    device_name: str
    channels: int
    fwd_flops_formula: int
    fwd_flops_counted: float
    params: int
    method: str  # a primitive's way, timed against its other ways (7.2, 7.4.5, 7.5.3)
    tf32: bool  # its fp32 convolutions and matrix products both timed in TF32 (a GPU's default)
    groups: int  # 7.4.7's grouped conv
    macs: int
    median_ms: float
    iqr_ms: float
    n: int


# The kinds of op a count is split into, ours and the peers' alike (bench/peers.py).
OP_KINDS = ("conv", "linear", "batch norm", "activation", "pooling", "addition", "other")


class PeersRow(TypedDict):
    """``peers``: other FLOP counters' forward MACs of one network at batch 1 in inference, each
    split by kind of op where it reports one (``counters``); conv and matrix-product backward
    MACs per image, ours and FlopCounterMode's raw and corrected; torchinfo's memory estimate;
    for a network torchvision also builds, our count of it built as torchvision builds it beside
    torchvision's published parameters and MACs."""

    model: str
    image_size: int
    params: int
    counters: list[dict[str, Any]]
    backward_macs: dict[str, float]
    torchinfo_memory_bytes: int | None
    torchvision: dict[str, Any] | None  # ours as torchvision builds it, beside what it publishes


class MachineRow(TypedDict):
    """``machine``: the roof of the device's roofline, per precision: the peak (what the
    hardware can do) and, beside it, what a matmul achieves."""

    peak_flops_per_s: float
    peak_source: str
    achievable_flops_per_s: float
    achievable_source: str
    bandwidth_bytes_per_s: float
    bandwidth_source: str


class RunRow(TypedDict):
    """``run``: one ``python -m bench all``, with the outcome of each stage."""

    preset: str
    models: None
    wall_s: float
    stages: dict[str, Any]  # each step's outcome, by its name
    stage_s: dict[str, float]  # the seconds each step took, an interrupted one's too
    not_trained: list[str]  # networks the preset leaves to another preset


ROWS: dict[str, Any] = {
    "profile": ProfileRow,
    "speed": SpeedRow,
    "memory": MemoryRow,
    "onnx": OnnxRow,
    "train": TrainRow,
    "pipeline": PipelineRow,
    "layers": LayersRow,
    "peers": PeersRow,
    "machine": MachineRow,
    "run": RunRow,
}
FAILURE_FIELDS = frozenset({"note", "error"})


def check(stage: str, row: dict[str, Any], status: str) -> None:
    """Raise ValueError where ``row`` does not fit its stage's schema."""
    schema = ROWS.get(stage)
    if schema is None:
        raise ValueError(f"no schema for rows of stage {stage!r}; bench/schema.py lists them")
    unknown = set(row) - set(schema.__annotations__) - FAILURE_FIELDS
    missing = set(schema.__required_keys__) - set(row) if status in MEASURED else set()
    for problem, names in (("fields its schema lacks", unknown), ("no", missing)):
        if names:
            raise ValueError(f"a {stage} row ({status}) has {problem}: {', '.join(sorted(names))}")
