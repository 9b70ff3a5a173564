"""A worker for the launcher's tests: does what its spec says, then reports what it saw."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def _write(path: str, seen: dict) -> None:
    """Atomically: the ranks of a torchrun worker write the same file at once."""
    tmp = Path(f"{path}.{os.getpid()}")
    tmp.write_text(json.dumps(seen))
    os.replace(tmp, path)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    torch = sys.modules.get("torch")
    seen = {"mark": os.environ.get("NORMBENCH_TEST_MARK"), "torch_loaded": torch is not None,
            "cuda_initialized": bool(torch is not None and torch.cuda.is_initialized()),
            "pid": os.getpid(), "argv": sys.argv[1:], "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "pool": os.environ.get("NORMBENCH_GPUS"), "start": time.time()}
    action = spec.get("action", "ok")
    if action == "nap":  # hold the GPUs it was given a while (the pool's tests)
        time.sleep(float(spec.get("seconds", 0.5)))
        seen["end"] = time.time()
    _write(spec["out"], seen)
    if action == "exit":
        return 3
    if action == "raise":
        raise RuntimeError("the worker failed")
    if action == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if action == "sleep":
        time.sleep(60)
    if action == "cuda":  # a forked worker must be able to make its own CUDA context
        import torch
        x = torch.arange(4.0, device="cuda")
        seen["cuda_sum"] = float((x * 2).sum().item())
        _write(spec["out"], seen)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
