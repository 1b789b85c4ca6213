"""Which Whisper model runs where, and loading it once per process.

``auto`` device and compute type are resolved per backend (CUDA when there is
one; int8 or float32 on CPU), and the loaded model is kept in a process-wide
cache keyed by everything that changes it, so a worker loads ``small`` once
however many videos it transcribes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from include.video_pipeline.config import WhisperSettings
from include.video_pipeline.core.errors import PermanentError


@dataclass(frozen=True)
class LoadedModel:
    backend: str
    model_name: str
    device: str
    compute_type: str
    multilingual: bool
    model: Any  # faster_whisper.WhisperModel or whisper.model.Whisper
    load_seconds: float


_MODELS: dict[tuple[str, ...], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _faster_whisper_device(settings: WhisperSettings) -> tuple[str, str]:
    import ctranslate2

    device = settings.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = settings.compute_type
    if compute_type == "auto":
        # int8 on CPU is ~2-3x faster than float32 at the same word error rate;
        # float16 is what GPUs are built for.
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def _openai_whisper_device(settings: WhisperSettings) -> tuple[str, str]:
    import torch

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    compute_type = settings.compute_type
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "float32"
    if compute_type not in {"float16", "float32"} or (compute_type == "float16" and device == "cpu"):
        raise PermanentError(
            f"openai-whisper supports compute type float16 (CUDA) or float32, not {compute_type!r} on {device}; "
            "set VIDEO_PIPELINE_WHISPER_COMPUTE_TYPE=auto"
        )
    return device, compute_type


def load_model(settings: WhisperSettings) -> LoadedModel:
    """The model for ``settings``, loaded on first use and then shared by the whole process."""
    if settings.backend == "faster-whisper":
        device, compute_type = _faster_whisper_device(settings)
    elif settings.backend == "openai-whisper":
        device, compute_type = _openai_whisper_device(settings)
    else:
        raise PermanentError(f"unknown Whisper backend {settings.backend!r}")
    key = (
        settings.backend,
        settings.model,
        device,
        compute_type,
        str(settings.cpu_threads),
        settings.download_root or "",
    )
    # One lock for all loads: two threads asking for the same model must not load it twice.
    with _MODELS_LOCK:
        if key not in _MODELS:
            started = time.perf_counter()
            if settings.backend == "faster-whisper":
                model, multilingual = _load_faster_whisper(settings, device, compute_type)
            else:
                model, multilingual = _load_openai_whisper(settings, device)
            _MODELS[key] = LoadedModel(
                backend=settings.backend,
                model_name=settings.model,
                device=device,
                compute_type=compute_type,
                multilingual=multilingual,
                model=model,
                load_seconds=time.perf_counter() - started,
            )
        return _MODELS[key]


def _load_faster_whisper(settings: WhisperSettings, device: str, compute_type: str) -> tuple[Any, bool]:
    from faster_whisper import WhisperModel

    model = WhisperModel(
        settings.model,
        device=device,
        compute_type=compute_type,
        cpu_threads=settings.cpu_threads,
        download_root=settings.download_root,
    )
    return model, bool(model.model.is_multilingual)


def _load_openai_whisper(settings: WhisperSettings, device: str) -> tuple[Any, bool]:
    import torch
    import whisper

    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    try:
        model = whisper.load_model(settings.model, device=device, download_root=settings.download_root)
    except RuntimeError as exc:
        # Raised for a name that is neither a known model nor an existing .pt file.
        if "not found" in str(exc):
            raise PermanentError(f"openai-whisper model {settings.model!r}: {exc}") from exc
        raise
    return model, bool(model.is_multilingual)
