"""Probing an upload: what it holds (ffprobe, or the ``ffmpeg -i`` banner), how long it really is,
and how loud each of its audio tracks is.

A file that can never be processed (empty, too large, not media, damaged) is
refused here with ``InputRejected``, before any encode starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

from include.video_pipeline.core.audio_tracks import AudioLevel, parse_volumedetect
from include.video_pipeline.core.errors import InputRejected, RejectReason, StageTimeout
from include.video_pipeline.core.media import (
    MediaInfo,
    check_size,
    classify_probe_failure,
    parse_ffmpeg_banner,
    parse_probe,
    stage_timeout,
    validate_media,
)
from include.video_pipeline.hooks.ffmpeg.results import FfmpegError
from include.video_pipeline.hooks.ffmpeg.runner import STDERR_TAIL_LINES, FfmpegRunner, _Run

# Read every packet, decode none: how long a file without a duration really is.
_DEMUX_ONLY = ("-map", "0:v?", "-map", "0:a?", "-c", "copy", "-f", "null", "-")


class FfmpegProbe(FfmpegRunner):
    """Describe media files: :meth:`probe` an upload, :meth:`measure_audio` its tracks."""

    def probe(self, path: str | os.PathLike[str]) -> MediaInfo:
        """Describe ``path`` and refuse it if it can never be processed.

        :raises InputRejected: empty, too large, not media, corrupt, no streams,
            unsupported codec or too long.
        :raises FfmpegError: ffprobe itself failed (retryable).
        """
        path = Path(path)
        size = path.stat().st_size
        # Before any tool runs: a 0-byte or 50 GB file needs no decoder to refuse.
        check_size(size, max_bytes=self.settings.max_upload_bytes)
        data = self._probe_json(path)
        info = parse_probe(data, size_bytes=size)
        if info.duration <= 0 and (info.video is not None or info.audio) and not info.is_still_image:
            info = self._measure_duration(path, info)
        validate_media(
            info,
            max_bytes=self.settings.max_upload_bytes,
            max_duration_seconds=self.settings.max_duration_seconds,
            max_video_pixels=self.settings.max_video_pixels,
        )
        video = info.video
        self.log.info(
            "Probed %s: %s, %.2f s, %d bytes, video=%s, audio tracks=%d",
            path.name,
            info.container,
            info.duration,
            info.size_bytes,
            f"{video.codec} {video.width}x{video.height} rot={video.rotation} {video.pix_fmt}" if video else None,
            len(info.audio),
        )
        return info

    def _probe_json(self, path: Path) -> dict:  # type: ignore[type-arg]
        timeout = float(self.settings.timeout_floor_seconds)
        if self.ffprobe:
            cmd = [self.ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
        else:
            cmd = [self.ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise StageTimeout(f"probing {path.name} took longer than {timeout:.0f} s") from None
        stderr = proc.stderr.decode("utf-8", "replace")
        if self.ffprobe and proc.returncode == 0:
            return json.loads(proc.stdout.decode("utf-8", "replace"))  # type: ignore[no-any-return]
        if not self.ffprobe:
            # "ffmpeg -i" with no output always exits 1; success is a parsed banner.
            try:
                return parse_ffmpeg_banner(stderr)
            except ValueError:
                pass
        self._raise_probe_failure(path, stderr, proc.returncode)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_probe_failure(self, path: Path, stderr: str, returncode: int) -> None:
        with path.open("rb") as fh:
            head = fh.read(4096)
        tail = "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        reason = classify_probe_failure(stderr, head)
        if reason is RejectReason.NOT_MEDIA:
            raise InputRejected(
                reason, f"{path.name} is not a video or audio file", {"ffprobe": tail[-1000:], "head": head[:16].hex()}
            )
        if reason is not None:
            raise InputRejected(reason, f"{path.name} cannot be read: it is damaged or incomplete", {"ffprobe": tail})
        raise FfmpegError(
            f"probing {path.name} failed (exit {returncode}):\n{tail}", returncode=returncode, stderr_tail=tail
        )

    def _measure_duration(self, path: Path, info: MediaInfo) -> MediaInfo:
        """Read the whole file once without decoding (stream copy to nowhere) to learn how long it is.

        Browser (MediaRecorder) and live recordings in WebM/Matroska say nothing
        about their length; reading the packets costs a pass over the bytes,
        not a decode. What the time limits and progress need is then known.
        """
        run = self._run(
            ["-hide_banner", "-nostdin", "-loglevel", "warning", "-i", str(path), *_DEMUX_ONLY],
            what=f"measuring the length of {path.name}",
            duration=0.0,
            # One read of the bytes: budget it by size (20 MB/s is a slow disk), never under the floor.
            timeout=max(float(self.settings.timeout_floor_seconds), info.size_bytes / 20e6),
        )
        self.log.info("%s does not say how long it is; reading it measured %.2f s", path.name, run.media_seconds)
        return dataclasses.replace(info, duration=round(run.media_seconds, 3), duration_measured=True)

    def measure_audio(self, path: str | os.PathLike[str], info: MediaInfo) -> dict[int, AudioLevel]:
        """Peak and mean level of every audio track (one ffmpeg run); empty with fewer than two tracks.

        Only a choice between tracks needs it: which ones ``video.mp4`` keeps and
        which one is transcribed.
        """
        path = Path(path)
        indexes = [track.index for track in info.audio]
        if len(indexes) < 2:
            return {}
        graph = ";".join(f"[0:{index}]volumedetect[l{n}]" for n, index in enumerate(indexes))
        cmd = [self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", "-i", str(path), "-filter_complex", graph]
        for n in range(len(indexes)):
            cmd += ["-map", f"[l{n}]"]
        cmd += ["-f", "null", "-"]
        timeout = stage_timeout(
            info.duration, factor=self.settings.timeout_factor, floor_seconds=self.settings.timeout_floor_seconds
        )
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise StageTimeout(f"measuring the audio tracks of {path.name} took longer than {timeout:.0f} s") from None
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            self._raise_failure(
                f"measuring the audio tracks of {path.name}", _Run(proc.returncode, stderr.splitlines())
            )
        levels = parse_volumedetect(stderr.splitlines(), indexes)
        self.log.info(
            "Audio tracks of %s: %s",
            path.name,
            ", ".join(f"#{i} peak {lv.peak_db:.1f} dB, mean {lv.mean_db:.1f} dB" for i, lv in sorted(levels.items())),
        )
        return levels

    def _duration_of(self, path: Path) -> float:
        """Duration of a file we wrote ourselves (used to detect truncated sources)."""
        data = self._probe_json(path)
        return parse_probe(data).duration
