"""What the ffmpeg hook hands back: the files a transcode, an HLS ladder or an audio extraction
wrote, and the retryable :class:`FfmpegError`.

Plain frozen dataclasses with no behaviour beyond listing their paths, so operators
and tests can build and read them without running ffmpeg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from include.video_pipeline.core import outputs
from include.video_pipeline.core.media import WHISPER_SAMPLE_RATE, HlsVariant

VIDEO_NAME = outputs.VIDEO
POSTER_NAME = outputs.POSTER
THUMBNAILS_NAME = outputs.THUMBNAILS
THUMBNAILS_VTT_NAME = outputs.THUMBNAILS_VTT


class FfmpegError(RuntimeError):
    """ffmpeg failed for a reason that is not the upload's fault (retryable).

    :param stderr_tail: the last lines ffmpeg printed, also part of the message.
    """

    def __init__(self, message: str, *, returncode: int | None = None, stderr_tail: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


@dataclass(frozen=True)
class HlsResult:
    """The HLS ladder :meth:`FfmpegHook.make_hls` wrote into ``<out_dir>/hls/``.

    :param paths: every file of the ladder, the master playlist included.
    :param variants: what the master playlist lists, lowest rung first.
    """

    master_path: Path
    paths: tuple[Path, ...]
    variants: tuple[HlsVariant, ...]
    segment_seconds: int
    has_audio: bool
    elapsed_seconds: float

    @property
    def renditions(self) -> tuple[str, ...]:
        """Rung names (``"360p"``, ``"720p"``), which are also their folders."""
        return tuple(v.uri.split("/", 1)[0] for v in self.variants)


@dataclass(frozen=True)
class TranscodeResult:
    """What :meth:`FfmpegHook.transcode` wrote into ``out_dir``.

    For an audio-only upload every path is ``None`` and ``has_video`` is false:
    there is nothing to show, only something to transcribe.

    :param width: display width of ``video.mp4`` (after rotation and scaling).
    :param remuxed: every stream was copied, nothing re-encoded.
    :param reasons: why streams were re-encoded, for logs and reports.
    :param hls: the HLS ladder, when enabled (``VIDEO_PIPELINE_HLS``) and the upload has video.
    :param flags: what is odd about a playable upload (``{code: detail}``, see
        :mod:`~include.video_pipeline.core.integrity`); never a reason to reject it.
    :param audio_tracks: the upload's audio stream indexes ``video.mp4`` keeps, in its order.
    """

    video_path: Path | None
    poster_path: Path | None
    thumbnails_path: Path | None
    thumbnails_vtt_path: Path | None
    width: int | None
    height: int | None
    duration: float
    remuxed: bool
    elapsed_seconds: float
    reasons: tuple[str, ...] = ()
    hls: HlsResult | None = None
    flags: dict[str, str] = field(default_factory=dict)
    audio_tracks: tuple[int, ...] = ()

    @property
    def has_video(self) -> bool:
        return self.video_path is not None

    @property
    def hls_paths(self) -> tuple[Path, ...]:
        return self.hls.paths if self.hls is not None else ()

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file written, for uploading (HLS files are under ``out_dir/hls/``)."""
        candidates = (self.video_path, self.poster_path, self.thumbnails_path, self.thumbnails_vtt_path)
        return tuple(p for p in candidates if p is not None) + self.hls_paths


@dataclass(frozen=True)
class AudioExtract:
    """A 16 kHz mono PCM WAV of one audio track, on the file's timeline (a late start and gaps are silence).

    :param flags: what decoding the track found odd (``{code: detail}``).
    """

    path: Path
    duration: float
    stream_index: int
    elapsed_seconds: float
    sample_rate: int = WHISPER_SAMPLE_RATE
    channels: int = 1
    language: str | None = None
    flags: dict[str, str] = field(default_factory=dict)
