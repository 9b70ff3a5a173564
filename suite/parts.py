"""The parts of a results row as typed JSON documents.

Each ``TypedDict`` here is one ``$defs`` entry of the published schema
(``schema/row.schema.json``): the same keys, the same required ones (a test compares them, so
the two cannot drift; the module is evaluated at import, without postponed annotations,
so that ``NotRequired`` is seen). They type what travels between processes and into rows: a worker's
timing (``Latency``, ``Throughput``...), a cell's outcome (``TrainInfo``, ``ModelInfo``,
``DatasetInfo``...) and the row itself (``RowDoc``). ``Json``/``JsonObject`` type the few parts
the schema leaves open (a model's keyword arguments, an NVML reading), so a reader has to check
a value before using it.
"""
from typing import Literal, NotRequired, TypeAlias, TypedDict

Json: TypeAlias = "str | int | float | bool | list[Json] | dict[str, Json] | None"
#: an object the schema leaves open (keyword arguments, readings): values are checked before use
JsonObject = dict[str, Json]
#: version of the row layout this suite writes; bump it (and add a migration in
#: ``suite.report.rows``) on any change of an existing field's meaning; added optional fields keep it
SCHEMA_VERSION = 3
Status = Literal["ok", "error", "diverged", "not-applicable"]
LauncherName = Literal["subprocess", "torchrun", "inline"]


class Ratio(TypedDict):
    """A variant's figure over the baseline's, measured interleaved in the same group."""
    value: float | None
    lo: float | None
    hi: float | None
    baseline: str
    rounds: NotRequired[int]
    log_ratios: NotRequired[list[float | None]]


class Latency(TypedDict):
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    batch: int
    n: int
    timer: Literal["perf_counter", "cuda_event"]
    ratio: Ratio | None
    round_ms: list[float | None]
    samples_ms: NotRequired[list[float | None]]
    block_iters: NotRequired[int]


class Throughput(TypedDict):
    value: float
    unit: str
    batch: int
    ratio: NotRequired[Ratio | None]
    round_ms: NotRequired[list[float | None]]


class Generation(TypedDict):
    prompt_tokens: int
    new_tokens: int
    p50_ms: float
    ms_per_token: float
    ratio: NotRequired[Ratio | None]


class Energy(TypedDict):
    """Energy per batch-1 inference from NVML's total energy counter (``suite.measure.energy``):
    ``status`` ``ok`` with the figures; ``unsupported`` (no counter: a CPU run, a GPU older than
    Volta, no NVML) or ``invalid`` (the counter did not advance in any window) with the ``reason``,
    never a zero. The figures are whole-board energy, idle draw included (``idle_included``)."""
    status: Literal["ok", "unsupported", "invalid"]
    reason: NotRequired[str]
    mj_per_inference: NotRequired[float]          # exp(10%-trimmed mean of the windows' log mJ/inference)
    lo: NotRequired[float | None]                 # its 95% bootstrap interval over the windows
    hi: NotRequired[float | None]
    power_w: NotRequired[float]                   # mean board power over the windows
    ms_per_inference: NotRequired[float]          # back-to-back wall time per inference in the windows
    batch: NotRequired[int]
    windows: NotRequired[int]                     # windows used
    flagged: NotRequired[int]                     # windows discarded (counter did not advance, ...)
    flags: NotRequired[list[str]]                 # why, once each
    inferences: NotRequired[int]
    seconds: NotRequired[float]
    update_ms: NotRequired[float | None]          # the counter's update period as observed
    window_mj: NotRequired[list[float | None]]    # per window (null: discarded), in round order
    idle_included: NotRequired[bool]
    ratio: NotRequired[Ratio | None]              # to the baseline, paired per energy round


class Memory(TypedDict):
    batch: NotRequired[int]
    peak_mb: NotRequired[float | None]
    source: NotRequired[str]
    error: NotRequired[str]


class Schedule(TypedDict):
    """A norm's budget-tied keywords as a cell used them and as published."""
    used: NotRequired[dict[str, object]]
    reference: NotRequired[dict[str, object]]
    scaled: NotRequired[bool]


class ModelInfo(TypedDict):
    name: str
    kwargs: JsonObject                    # the model factory's keywords (the profile's)
    variant_kwargs: dict[str, object]     # the norm's, as the cell used them
    attention: NotRequired[object]        # what the attention surgery reports of itself
    params_train: NotRequired[int]
    params: NotRequired[int]
    flops: NotRequired[int]
    schedule: NotRequired[Schedule | None]


class Agreement(TypedDict):
    rel_err: float | None
    reference: str
    inputs: int
    note: NotRequired[str]


class LearningCurve(TypedDict):
    steps: list[int]
    train_loss: list[float | None]
    values: list[float | None]
    metric: str
    eval_items: int


class GpuUsed(TypedDict):
    """A GPU a cell trained on: its index as the sweep numbers them (``--gpus``), name and UUID."""
    index: int
    name: str
    uuid: str | None


class TrainInfo(TypedDict):
    steps: int
    time_s: float
    step_ms: float
    final_loss: float | None
    loss_curve: list[float | None]
    amp: NotRequired[Literal["bf16", "fp16"] | None]
    curve: NotRequired[LearningCurve | None]
    threads: NotRequired[int]
    concurrent: NotRequired[int]
    resumed_from: NotRequired[list[int]]   # steps done when training continued from a checkpoint
    gpus: NotRequired[list[GpuUsed]]       # the GPUs the cell's process saw (CUDA), as pinned


class DeployInfo(TypedDict):
    rel_err: float
    norm_modules_left: int
    checked: NotRequired[str]


class DatasetInfo(TypedDict):
    kind: Literal["embedded", "real"]
    path: str | None
    label: str
    name: NotRequired[str]
    n_train: NotRequired[int]
    n_eval: NotRequired[int]
    fingerprint: NotRequired[str]
    num_classes: NotRequired[int | None]


class Distributed(TypedDict):
    world_size: int
    backend: Literal["none", "gloo", "nccl"]
    bn_statistics: Literal["per-process", "syncbn"]


class Versions(TypedDict):
    """The plugin versions of a cell: a bumped version changes its ``config_id``."""
    task: str
    norm: str
    attention: NotRequired[str]
    placement: NotRequired[str]


class Recipe(TypedDict):
    steps: int
    batch_size: int
    lr: float


class ProfileConfig(TypedDict):
    name: str
    model: str
    model_kwargs: JsonObject
    recipe: Recipe
    throughput_batch: int
    timing_s_per_model: float
    extra: JsonObject


class NvmlState(TypedDict):
    """One NVML reading of the GPU (``suite.measure.gpu.gpu_state``); None where a sensor is unreadable."""
    sm_clock_mhz: int | None
    mem_clock_mhz: int | None
    temperature_c: int | None
    power_w: float | None
    throttle_reasons: list[str]
    throttled: bool
    other_processes: int


class NvmlSummary(TypedDict):
    """The readings between a group's rounds (``suite.measure.gpu.StateSampler.summary``)."""
    samples: int
    sm_clock_mhz: dict[str, float] | None      # min, median, max
    temperature_c_max: int | None
    power_w_max: float | None
    throttle_reasons: list[str]
    throttled: bool
    throttled_fraction: float
    other_processes: int
    violation_ms: NotRequired[dict[str, float]]  # "power", "thermal": time the clocks were held down


class GpuState(TypedDict):
    """NVML readings before, during (between rounds) and after a timing group."""
    before: NotRequired[NvmlState | None]
    during: NotRequired[NvmlSummary | None]
    after: NotRequired[NvmlState | None]


class HostState(TypedDict):
    cpus: int
    wall_s: float
    others_cpu_fraction: float
    loadavg_1m: NotRequired[float]


class GitState(TypedDict):
    commit: NotRequired[str | None]
    dirty: NotRequired[bool | None]


class DeviceInfo(TypedDict):
    """What the measurements ran on; a GPU adds its NVML description (``suite.measure.gpu``)."""
    type: Literal["cpu", "cuda"]
    name: str
    cpu: NotRequired[str]
    cpu_count: NotRequired[int | None]
    cpu_isa: NotRequired[str]          # torch's CPU kernels' SIMD level (torch.backends.cpu.get_cpu_capability)
    torch_threads: NotRequired[int]
    index: NotRequired[int]            # the GPU as the sweep numbers them (--gpus)
    cuda: NotRequired[str | None]
    uuid: NotRequired[str | None]
    capability: NotRequired[str | None]
    total_memory_mb: NotRequired[float | None]
    driver: NotRequired[str]
    max_sm_clock_mhz: NotRequired[int | None]
    power_limit_w: NotRequired[float | None]
    tf32: NotRequired[dict[str, bool | str]]


class Provenance(TypedDict):
    schema_version: int
    suite_version: str
    git: GitState
    python: str
    libraries: dict[str, str | None]
    device: DeviceInfo
    host: NotRequired[str]
    platform: NotRequired[str]


class BuildArgs(TypedDict):
    """How to build a cell's model (a task's ``model_args``; a deployed model's ``deployed.json``):
    the allow-listed ``factory`` (``model`` or ``detector``), the model ``name``, the ``variant``
    with its ``variant_kwargs``, the factory's ``kwargs`` and how the model is ``call``-ed when timed."""
    factory: str
    name: str
    variant: str
    variant_kwargs: JsonObject
    kwargs: JsonObject
    call: str


class GenerationSpec(TypedDict):
    """Generation timing of a language model: a prompt of ``prompt`` tokens, ``new_tokens`` generated."""
    prompt: int
    new_tokens: int


class InputSpec(TypedDict):
    """What timing and memory feed a deployed model (``suite.measure.inputs.make_input``): images
    of ``shape`` or token ids of ``seq_len`` below ``vocab_size``; ``items`` per example counts
    throughput (tokens for a language model)."""
    kind: Literal["image", "tokens"]
    shape: NotRequired[list[int]]
    seq_len: NotRequired[int]
    vocab_size: NotRequired[int]
    items: NotRequired[int]
    generation: NotRequired[GenerationSpec | None]


class TimingSettings(TypedDict):
    """The ``suite.measure.interleave.TimingConfig`` keywords a timing job sets (the row's
    ``timing_config``; the others keep their defaults)."""
    budget_s: float
    throughput_batch: int
    warmup_s: float
    block_s: float
    measure_throughput: NotRequired[bool]
    # what the worker's allocator was set to (``suite.measure.alloc.steady_malloc``)
    malloc: NotRequired[str]
    mmap_threshold: NotRequired[int]
    trim_threshold: NotRequired[int]


class JobInfo(TypedDict):
    """The scheduler job a unit of work ran in: its id (``JOB_TASK`` for an array task), node, GPUs."""
    scheduler: Literal["slurm"]
    job_id: str
    node: str
    gpus: str | None


class SchedulerInfo(TypedDict):
    """Where a row's work ran under a scheduler: the cell's training job and its group's measurement job."""
    train: JobInfo | None
    measure: JobInfo | None


class RowDoc(TypedDict):
    """One results row as stored (one JSON line of ``results.jsonl``)."""
    schema_version: int
    run_id: str
    key: str
    config_id: str | None
    config_group: str | None
    task: str
    variant: str
    norm: str
    attention: str | None
    seed: int
    profile: str
    device: str
    status: Status
    message: str
    runtime: str
    precision: str
    quality: dict[str, float | None]
    quality_delta: dict[str, float | None]
    primary_metric: str | None
    metric_better: dict[str, str]
    latency: Latency | None
    throughput: Throughput | None
    generation: Generation | None
    energy: NotRequired[Energy | None]   # since energy per inference: absent from older rows
    runtime_info: JsonObject | None
    agreement: Agreement | None
    memory: Memory | None
    model: ModelInfo | None
    train: TrainInfo | None
    deploy: DeployInfo | None
    dataset: DatasetInfo
    distributed: Distributed
    launcher: LauncherName
    versions: Versions | None
    profile_config: ProfileConfig | None
    timing_config: TimingSettings | None
    gpu_state: GpuState | None
    host_state: HostState | None
    provenance: Provenance
    started_at: str | None
    finished_at: str | None
    recorded_at: str
    scheduler: NotRequired[SchedulerInfo | None]   # since the SLURM launcher: absent from older rows


#: each part and the ``$defs`` entry of the schema it types (the test compares their keys)
SCHEMA_DEFS: dict[str, type] = {
    "ratio": Ratio, "latency": Latency, "throughput": Throughput, "generation": Generation, "energy": Energy,
    "memory": Memory, "model": ModelInfo, "agreement": Agreement, "learning_curve": LearningCurve,
    "train": TrainInfo, "deploy": DeployInfo, "dataset": DatasetInfo, "distributed": Distributed,
    "versions": Versions, "profile_config": ProfileConfig, "gpu_state": GpuState,
    "host_state": HostState, "provenance": Provenance, "job": JobInfo, "scheduler": SchedulerInfo,
}
