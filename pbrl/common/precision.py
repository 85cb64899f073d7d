"""Which precision the matmuls run in: fp32 by default; ``precision=auto`` picks bf16 only where the hardware runs
it natively.

bf16 halves the bytes of every activation and, on hardware with native bf16 matmuls, runs them
several times faster than fp32: a CUDA GPU of compute capability 8.0 or newer, or a CPU with
AVX512-BF16 or AMX (measured on such an Intel CPU: ~430 vs ~110 GFLOP/s per thread). Elsewhere
torch emulates bf16 and it is far slower: ~1.3 vs ~70 GFLOP/s per thread on an AVX2-only AMD EPYC,
where ``precision=bf16`` once turned a half-hour run into a day. So ``auto`` asks the hardware,
once per process, and an explicit ``bf16`` on hardware without it runs with one warning line
that gives the slowdown measured by a short timed probe.
"""

from __future__ import annotations

import functools
import time

import torch

from pbrl.errors import check_choice

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 matmuls natively, and the reason in words."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        return (major, minor) >= (8, 0), f"{name}, compute capability {major}.{minor}"
    if device.type != "cpu":
        return False, f"{device.type} device"
    cpu = torch.cpu
    native = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                  or getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    capability = torch.backends.cpu.get_cpu_capability()
    return native, f"CPU capability {capability}, " + ("AVX512-BF16/AMX" if native else "no AVX512-BF16 or AMX")


@functools.lru_cache(maxsize=None)
def bf16_slowdown(device_type: str = "cpu", size: int = 256, repeats: int = 3) -> float:
    """How many times slower a ``size``³ bf16 matmul runs than fp32 here (a short probe, once per process)."""
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size, device=device_type).to(dtype)
        b = torch.randn(size, size, device=device_type).to(dtype)
        a @ b  # warm-up
        if device_type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device_type == "cuda":
            torch.cuda.synchronize()
        seconds[dtype] = (time.perf_counter() - start) / repeats
    return seconds[torch.bfloat16] / max(seconds[torch.float32], 1e-12)


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision to run (``fp32`` or ``bf16``) and one line saying why, for ``precision=requested``.

    ``auto``: bf16 where native, else fp32. ``bf16`` without native support still runs, and the
    line is a warning with the measured slowdown.
    """
    check_choice("precision", requested, PRECISIONS)
    native, why = native_bf16(device)
    if requested == "fp32":
        return "fp32", "precision fp32 (as set)"
    if requested == "auto":
        used = "bf16" if native else "fp32"
        return used, f"precision {used} (auto: {why})"
    if native:
        return "bf16", f"precision bf16 (as set; {why})"
    slowdown = bf16_slowdown(device.type)
    return "bf16", (f"warning: precision=bf16 on hardware without native bf16 ({why}): a bf16 matmul measured "
                    f"{slowdown:.0f}x slower than fp32 here; precision=auto would pick fp32")
