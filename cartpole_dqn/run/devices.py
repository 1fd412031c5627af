"""Device checks made at the edge, so a bad device is a one-line error rather than a torch traceback."""

from __future__ import annotations

from cartpole_dqn.errors import UsageError


def check_device(device: str) -> None:
    """Refuse a CUDA device that this machine does not have (torch is imported only to ask)."""
    if not device.startswith("cuda"):
        return
    import torch as th

    if not th.cuda.is_available():
        raise UsageError(
            f"device '{device}' requested but CUDA is not available (torch {th.__version__}); "
            "use cpu or auto",
            about="device",
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= th.cuda.device_count():
        raise UsageError(
            f"device '{device}' does not exist: {th.cuda.device_count()} CUDA device(s) visible",
            about="device",
        )
