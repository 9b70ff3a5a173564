"""``onnxruntime``: export with the dynamo-based ``torch.onnx.export``, run in ONNX Runtime.

One ``InferenceSession`` per model: the CPU execution provider on CPU; on CUDA the CUDA
provider when this onnxruntime build has it (``onnxruntime-gpu``). ONNX Runtime falls back to
the CPU provider, silently, when a requested provider fails to load (a missing cuDNN, say), so
the session's providers are checked after it is made: a session that did not get the provider
asked for is an error, never a CPU timing in a GPU row. (TensorRT is not asked for: its engine
builds take minutes per shape and are a runtime of their own.) Intra-op threads
are pinned to the run's ``--threads`` and do not spin between calls: the models of a timing
group run interleaved in one process, and a session whose idle threads spin would slow the
next model down. The batch dimension is exported as dynamic; where export cannot keep it
dynamic, each timed shape gets its own static graph and session. Export and session creation
are timed apart (``build_s``), with the ORT version and provider in the row.
"""
from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from suite.measure.runtimes import Built, Runtime, register_runtime
from suite.parts import JsonObject

OPSET = 18


@register_runtime("onnxruntime")
class OnnxRuntime(Runtime):
    """ONNX Runtime (export by torch.onnx dynamo; CPU provider, or CUDA provider with onnxruntime-gpu)."""

    gpu_memory = "device"  # ORT's CUDA arena is outside PyTorch's allocator

    @classmethod
    def unsupported(cls, device: torch.device, precision: str) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu for CUDA)"
        if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
        if device.type != "cuda" and precision == "bf16":
            return (f"onnxruntime {ort.__version__}'s CPU execution provider lacks bfloat16 kernels these graphs "
                    "need (its session rejects a bfloat16 Add)")
        return None

    @classmethod
    def build(cls, model: torch.nn.Module, examples: list[Any], *, device: torch.device, precision: str,
              threads: int | None) -> Built:
        import onnxruntime as ort
        providers = _providers(device)
        work = Path(tempfile.mkdtemp(prefix="normbench-onnx-"))
        t0 = time.perf_counter()
        paths: dict[tuple[int, ...] | None, Path]  # None: one graph with a dynamic batch
        try:  # export on the largest example: torch.export specializes a dimension of size 1
            paths = {None: _export(model, examples[-1], work / "model.onnx", dynamic=True)}
        except Exception:  # noqa: BLE001 - a model that cannot keep a dynamic batch gets one graph per shape
            paths = {tuple(x.shape): _export(model, x, work / f"model-{i}.onnx", dynamic=False)
                     for i, x in enumerate(examples)}
        export_s = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        t1 = time.perf_counter()
        sessions = {k: ort.InferenceSession(str(p), options, providers=providers) for k, p in paths.items()}
        session_s = time.perf_counter() - t1
        got = next(iter(sessions.values())).get_providers()
        provider = check_provider([p if isinstance(p, str) else p[0] for p in providers], got)
        run = _Runner(sessions, device)
        for x in examples:  # the first run allocates the session's buffers: keep it out of the timing
            run(x)
        info: JsonObject = {"onnxruntime": ort.__version__, "provider": provider, "providers": got,
                            "export_s": export_s, "session_s": session_s, "opset": OPSET,
                            "dynamic_batch": None in sessions, "intra_op_threads": options.intra_op_num_threads,
                            "spinning": False}
        return Built(run, time.perf_counter() - t0, info)


def _providers(device: torch.device) -> list[Any]:
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    # the CPU provider stays in the list: it runs the few nodes the CUDA provider has no kernel for
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


def check_provider(requested: list[str], got: list[str]) -> str:
    """The provider the session runs on: the first one requested, or an error that says which it got."""
    if not got or got[0] != requested[0]:
        raise RuntimeError(f"ONNX Runtime did not load {requested[0]} (the session got {', '.join(got) or 'none'}): "
                           f"it falls back silently when a provider's libraries fail to load; see its log above, "
                           f"or check the onnxruntime-gpu install (CUDA and cuDNN versions)")
    return got[0]


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path, dynamic: bool) -> Path:
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=dynamic_shapes,
                                    opset_version=OPSET, verbose=False, report=False)
    assert program is not None  # dynamo=True always returns the program
    program.save(str(path))
    return path


class _Runner:
    """Calls the session for an input tensor: numpy in and out on CPU, device buffers on CUDA."""

    def __init__(self, sessions: dict[Any, Any], device: torch.device) -> None:
        self.sessions, self.device = sessions, device
        first = next(iter(sessions.values()))
        self.input_name = first.get_inputs()[0].name

    def session(self, x: torch.Tensor) -> Any:
        return self.sessions.get(None) or self.sessions[tuple(x.shape)]

    def __call__(self, x: torch.Tensor) -> Any:
        sess = self.session(x)
        if self.device.type != "cuda":
            return sess.run(None, {self.input_name: _numpy(x.detach().contiguous())})
        binding = sess.io_binding()
        x = x.contiguous()
        binding.bind_input(self.input_name, "cuda", self.device.index or 0, _np_dtype(x.dtype), tuple(x.shape),
                           x.data_ptr())
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cuda", self.device.index or 0)
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return binding.get_outputs()


def _numpy(x: torch.Tensor) -> Any:
    """A CPU tensor as a numpy array without a copy (bfloat16 through ml_dtypes, which numpy lacks)."""
    if x.dtype == torch.bfloat16:
        import ml_dtypes
        return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return x.numpy()


def _np_dtype(dtype: torch.dtype) -> Any:
    return _numpy(torch.empty(0, dtype=dtype)).dtype
