"""Run ffmpeg and ffprobe: probe uploads, make the web rendition (and optionally an HLS ladder),
extract audio for Whisper.

Every decision (copy or re-encode, sizes, filters, which audio track) is made in
:mod:`include.video_pipeline.core.media`; this hook only runs the commands it
builds, with a time budget, progress in the task log, and careful cleanup.

Binaries: the system ``ffmpeg``/``ffprobe`` when they are on ``PATH``, else the
static ffmpeg shipped by ``imageio-ffmpeg``. That build has no ffprobe, so
probing then falls back to parsing the input description ``ffmpeg -i`` prints
(:func:`~include.video_pipeline.core.media.parse_ffmpeg_banner`): codecs, sizes,
rotation, channels and default flags are recovered, the colour transfer is
not, so HDR sources are converted to 8 bits without tone-mapping.

Commands are run with :mod:`subprocess` rather than through ffmpeg-python's
``run()``: the pipeline needs a timeout, a process-group kill, and live
``-progress`` parsing, which ffmpeg-python does not offer; the argument lists it
would build are built (and unit-tested) in ``core.media`` instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from airflow.sdk import BaseHook

from include.video_pipeline.config import TranscodeSettings
from include.video_pipeline.core.audio_tracks import AudioLevel, parse_volumedetect, tracks_for_video
from include.video_pipeline.core.errors import InputRejected, RejectReason, StageTimeout
from include.video_pipeline.core.integrity import (
    TIMING_SLACK_SECONDS,
    DecodeLog,
    Span,
    assess_decode,
    check_decoded_length,
    flag,
    timing_flags,
)
from include.video_pipeline.core.media import (
    HLS_AUDIO_CODECS,
    HLS_DIR,
    HLS_MASTER_NAME,
    WHISPER_SAMPLE_RATE,
    AudioStream,
    HlsPlan,
    HlsVariant,
    MediaInfo,
    MediaPlaylist,
    PosterPlan,
    avc_codecs_attribute,
    average_bitrate,
    check_size,
    classify_ffmpeg_failure,
    classify_probe_failure,
    hls_args,
    parse_ffmpeg_banner,
    parse_media_playlist,
    parse_probe,
    peak_segment_bitrate,
    plan_hls,
    plan_poster,
    plan_thumbnails,
    plan_transcode,
    poster_args,
    progress_percent,
    progress_seconds,
    render_master_playlist,
    render_thumbnails_vtt,
    stage_timeout,
    thumbnail_sheet_args,
    transcode_args,
    validate_media,
)

# Lines of ffmpeg's stderr quoted in error messages (the end is where the cause is).
STDERR_TAIL_LINES = 20
# Lines kept for classifying a failure: decode errors can be printed long before the exit.
_STDERR_KEEP_LINES = 400
# Log progress at most this often, so an hour-long transcode does not flood the task log.
_PROGRESS_LOG_STEP_PERCENT = 10.0
_PROGRESS_LOG_MIN_SECONDS = 30.0

# Read every packet, decode none: how long a file without a duration really is.
_DEMUX_ONLY = ("-map", "0:v?", "-map", "0:a?", "-c", "copy", "-f", "null", "-")

VIDEO_NAME = "video.mp4"
POSTER_NAME = "poster.jpg"
THUMBNAILS_NAME = "thumbnails.jpg"
THUMBNAILS_VTT_NAME = "thumbnails.vtt"


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


@dataclass
class _Run:
    """The outcome of one ffmpeg process: its warnings and errors, and what it decoded."""

    returncode: int
    stderr: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    log: DecodeLog = field(default_factory=DecodeLog)
    media_seconds: float = 0.0

    @property
    def tail(self) -> str:
        return "\n".join(self.stderr[-STDERR_TAIL_LINES:])


def _temp_name(final: Path) -> Path:
    # Same folder as the final file so the rename is atomic; a leading dot and
    # a .part suffix keep half-written files out of any "*.mp4" listing.
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")


def _replace_dir(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final``, replacing what a previous attempt left there.

    A folder cannot be renamed over a non-empty one, so the old one is moved
    aside first and deleted after: ``final`` is never half old, half new.
    """
    old = None
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
        final.rename(old)
    elif final.exists() or final.is_symlink():
        final.unlink()
    new.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


class FfmpegHook(BaseHook):
    """Probe and transcode local media files with ffmpeg; no Airflow connection is needed.

    :param settings: limits and encoder settings (``include.video_pipeline.config``).
    :param ffmpeg_path: an explicit ffmpeg binary; default: ``ffmpeg`` on ``PATH``,
        else imageio-ffmpeg's.
    :param ffprobe_path: an explicit ffprobe; default: ``ffprobe`` next to a
        system ffmpeg. ``""`` forces the ``ffmpeg -i`` fallback.
    """

    conn_name_attr = None
    hook_name = "FFmpeg"

    def __init__(
        self,
        *,
        settings: TranscodeSettings | None = None,
        ffmpeg_path: str | None = None,
        ffprobe_path: str | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.settings = settings or TranscodeSettings()
        self.ffmpeg_path = ffmpeg_path
        self.ffprobe_path = ffprobe_path

    # ------------------------------------------------------------------ binaries

    @cached_property
    def ffmpeg(self) -> str:
        """The ffmpeg executable in use."""
        if self.ffmpeg_path:
            return self.ffmpeg_path
        system = shutil.which("ffmpeg")
        if system:
            return system
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())

    @cached_property
    def ffprobe(self) -> str | None:
        """The ffprobe executable, or ``None`` when probing falls back to ``ffmpeg -i``."""
        if self.ffprobe_path is not None:
            return self.ffprobe_path or None
        # Only pair ffprobe with the ffmpeg it ships with: a system ffprobe next
        # to imageio's ffmpeg could disagree about codecs.
        sibling = Path(self.ffmpeg).with_name("ffprobe")
        if sibling.is_file() and os.access(sibling, os.X_OK):
            return str(sibling)
        return None

    @cached_property
    def can_tonemap(self) -> bool:
        """Whether this ffmpeg has the zscale and tonemap filters (HDR to SDR)."""
        proc = subprocess.run(
            [self.ffmpeg, "-hide_banner", "-nostdin", "-filters"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        names = {line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) > 2}
        return {"zscale", "tonemap"} <= names

    # ------------------------------------------------------------------- probing

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

    # ------------------------------------------------------------------ transcode

    def transcode(
        self, source: str | os.PathLike[str], out_dir: str | os.PathLike[str], info: MediaInfo
    ) -> TranscodeResult:
        """Write ``video.mp4``, ``poster.jpg``, ``thumbnails.jpg`` and ``thumbnails.vtt`` into ``out_dir``,
        and the HLS ladder into ``out_dir/hls/`` when ``settings.hls`` is on (see :meth:`make_hls`).

        All appear together or not at all: they are written under temporary
        names and renamed at the end, and removed on any failure. Audio-only
        uploads produce nothing here.

        :param info: the result of :meth:`probe` for ``source``.
        :raises InputRejected: the source turned out to be corrupt while decoding.
        :raises StageTimeout: ffmpeg ran past its time budget.
        :raises FfmpegError: any other ffmpeg failure (retryable).
        """
        started = time.monotonic()
        source, out_dir = Path(source), Path(out_dir)
        settings = self.settings
        levels = self.measure_audio(source, info) if info.video is not None else {}
        keep = tracks_for_video(info.audio, levels)
        plan = plan_transcode(
            info,
            max_height=settings.max_height,
            crf=settings.crf,
            preset=settings.preset,
            can_tonemap=bool(info.video and info.video.hdr) and self.can_tonemap,
            audio_tracks=keep,
        )
        if plan.video is None:
            self.log.info("%s has no video stream: no web video, poster or thumbnails to make", source.name)
            return TranscodeResult(None, None, None, None, None, None, info.duration, False, 0.0, plan.reasons)
        if plan.remux:
            self.log.info("%s is already web-ready: copying streams into mp4 (no re-encode)", source.name)
        else:
            self.log.info("Re-encoding %s: %s", source.name, "; ".join(plan.reasons))

        out_dir.mkdir(parents=True, exist_ok=True)
        finals = [out_dir / n for n in (VIDEO_NAME, POSTER_NAME, THUMBNAILS_NAME, THUMBNAILS_VTT_NAME)]
        temps = [_temp_name(p) for p in finals]
        tmp_video, tmp_poster, tmp_sheet, tmp_vtt = temps
        hls: HlsResult | None = None
        try:
            timeout = stage_timeout(
                info.duration, factor=settings.timeout_factor, floor_seconds=settings.timeout_floor_seconds
            )
            run = self._run(
                transcode_args(str(source), str(tmp_video), plan, threads=settings.threads),
                what=f"transcoding {source.name}",
                duration=info.duration,
                timeout=timeout,
                decode_stats=True,
            )
            out = parse_probe(self._probe_json(tmp_video), size_bytes=tmp_video.stat().st_size)
            assert out.video is not None, "ffmpeg wrote an mp4 without video"
            flags = self._assess_transcode(info, out, keep, run)
            width, height = out.video.display_width, out.video.display_height

            self._make_poster(tmp_video, tmp_poster, out)
            sheet = plan_thumbnails(out.duration, width, height)
            self._run(
                thumbnail_sheet_args(str(tmp_video), str(tmp_sheet), sheet),
                what=f"making thumbnails of {source.name}",
                duration=0.0,
                timeout=float(settings.timeout_floor_seconds),
            )
            tmp_vtt.write_text(render_thumbnails_vtt(sheet, THUMBNAILS_NAME), encoding="utf-8")
            if settings.hls:
                hls = self.make_hls(source, out_dir, info, audio_track=keep[0] if keep else None)
            for tmp, final in zip(temps, finals, strict=True):
                tmp.replace(final)
        except BaseException:
            _remove(temps)
            if hls is not None:
                shutil.rmtree(hls.master_path.parent, ignore_errors=True)
            raise
        elapsed = time.monotonic() - started
        self.log.info(
            "Wrote %s: %dx%d, %.2f s, %s, in %.1f s (%.1fx real time)",
            finals[0],
            width,
            height,
            out.duration,
            "remuxed" if plan.remux else "re-encoded",
            elapsed,
            info.duration / elapsed if elapsed > 0 else 0.0,
        )
        return TranscodeResult(
            video_path=finals[0],
            poster_path=finals[1],
            thumbnails_path=finals[2],
            thumbnails_vtt_path=finals[3],
            width=width,
            height=height,
            duration=out.duration,
            remuxed=plan.remux,
            elapsed_seconds=elapsed,
            reasons=plan.reasons,
            hls=hls,
            flags=flags,
            audio_tracks=tuple(track.index for track in keep),
        )

    def _assess_transcode(
        self,
        info: MediaInfo,
        out: MediaInfo,
        keep: tuple[AudioStream, ...],
        run: _Run,
    ) -> dict[str, str]:
        """Refuse a damaged source (the rule: :mod:`~include.video_pipeline.core.integrity`); else flag a playable one.

        The web mp4 keeps exact per-stream durations, so what was decoded is
        read back from it and held against what the upload's index promised.
        """
        assert info.video is not None and out.video is not None
        spans = {info.video.index: _span(out.video.start, out.video.duration, out.duration)}
        for source_track, written in zip(keep, out.audio, strict=False):
            spans[source_track.index] = _span(written.start, written.duration, out.duration)
        promised = {info.video.index: _promise(info.video.start, info.video.duration)}
        promised.update({t.index: _promise(t.start, t.duration) for t in keep})
        try:
            flags = check_decoded_length(
                promised, {i: s.end for i, s in spans.items()}, container_seconds=info.duration, whole_file=True
            )
            flags.update(assess_decode(run.log, what=f"the upload ({info.container})"))
        except InputRejected as exc:
            exc.details["ffmpeg"] = run.tail
            raise
        rate = (keep[0].sample_rate if keep else None) or 48000
        audio_spans = [spans[t.index] for t in keep if t.index in spans]
        flags.update(timing_flags(spans[info.video.index], audio_spans, gaps_seconds=run.log.silence_samples / rate))
        if info.duration_measured:
            flags.update(flag("duration_unknown", f"the container gives no duration; measured {info.duration:.1f} s"))
        dropped = [t.index for t in info.audio if t.index not in {k.index for k in keep}]
        if dropped:
            flags.update(
                flag(
                    "silent_audio_tracks",
                    f"{len(dropped)} of {len(info.audio)} audio tracks are silent (streams "
                    f"{', '.join(map(str, dropped))}) and were left out of video.mp4",
                )
            )
        if flags:
            self.log.warning("%s is playable but unusual: %s", info.container, "; ".join(flags.values()))
        return flags

    def _make_poster(self, video: Path, dest: Path, out: MediaInfo) -> None:
        plan = plan_poster(out.duration, out.video.frame_rate if out.video else None)
        timeout = float(self.settings.timeout_floor_seconds)
        self._run(poster_args(str(video), str(dest), plan), what="making the poster", duration=0.0, timeout=timeout)
        if not dest.exists() or dest.stat().st_size == 0:
            # A seek past the last keyframe of a very short clip yields no
            # frame; the first frame is a poor poster but better than none.
            first = PosterPlan(start=0.0, window=plan.window, frames=plan.frames)
            self._run(
                poster_args(str(video), str(dest), first), what="making the poster", duration=0.0, timeout=timeout
            )
        if not dest.exists() or dest.stat().st_size == 0:
            raise FfmpegError(f"ffmpeg wrote no poster for {video.name}")

    # ----------------------------------------------------------------------- HLS

    def make_hls(
        self,
        source: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        info: MediaInfo,
        audio_track: AudioStream | None = None,
    ) -> HlsResult | None:
        """Write an HLS ladder of ``source`` into ``out_dir/hls/`` with one ffmpeg process.

        ``hls/master.m3u8`` lists one rung per ``settings.hls_renditions`` height
        the source reaches (``hls/720p/index.m3u8``, ``init_720p.mp4``,
        ``seg_00001.m4s``...) and the shared AAC track (``hls/audio/``). The
        ladder is built in a hidden folder and renamed into place whole; on any
        failure that folder is removed. ``None`` for audio-only uploads.

        :raises InputRejected: the source turned out to be corrupt while decoding.
        :raises StageTimeout: ffmpeg ran past its time budget (media duration x renditions).
        :raises FfmpegError: any other ffmpeg failure, or a ladder that does not check out (retryable).
        """
        started = time.monotonic()
        source, out_dir = Path(source).resolve(), Path(out_dir)
        settings = self.settings
        plan = plan_hls(
            info,
            heights=settings.hls_renditions,
            segment_seconds=settings.hls_segment_seconds,
            crf=settings.crf,
            preset=settings.preset,
            can_tonemap=bool(info.video and info.video.hdr) and self.can_tonemap,
            audio_track=audio_track,
        )
        if plan is None:
            self.log.info("%s has no video stream: no HLS ladder", source.name)
            return None
        self.log.info("Encoding the HLS ladder of %s: %s", source.name, ", ".join(plan.names))
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{HLS_DIR}.{uuid.uuid4().hex[:8]}.part"
        final = out_dir / HLS_DIR
        try:
            tmp.mkdir()
            for rung in plan.renditions:
                (tmp / rung.name).mkdir()
            if plan.audio is not None:
                (tmp / (plan.audio_playlist or "")).parent.mkdir()
            # Every rung is a full encode of the whole video, in the same process.
            timeout = stage_timeout(
                info.duration * len(plan.renditions),
                factor=settings.timeout_factor,
                floor_seconds=settings.timeout_floor_seconds,
            )
            run = self._run(
                hls_args(str(source), plan, threads=settings.threads),
                what=f"encoding the HLS ladder of {source.name}",
                duration=info.duration,
                timeout=timeout,
                cwd=tmp,
            )
            variants = self._check_hls(tmp, plan, info, run)
            master = render_master_playlist(variants, audio_uri=plan.audio_playlist, audio_channels=plan.audio_channels)
            (tmp / HLS_MASTER_NAME).write_text(master, encoding="utf-8")
            _replace_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        paths = tuple(sorted(p for p in final.rglob("*") if p.is_file()))
        elapsed = time.monotonic() - started
        self.log.info(
            "Wrote %s: %s, %d files, in %.1f s",
            final / HLS_MASTER_NAME,
            ", ".join(f"{v.width}x{v.height} {v.bandwidth / 1e6:.2f} Mbit/s" for v in variants),
            len(paths),
            elapsed,
        )
        return HlsResult(
            master_path=final / HLS_MASTER_NAME,
            paths=paths,
            variants=tuple(sorted(variants, key=lambda v: v.width * v.height)),
            segment_seconds=plan.segment_seconds,
            has_audio=plan.audio is not None,
            elapsed_seconds=elapsed,
        )

    def _check_hls(self, folder: Path, plan: HlsPlan, info: MediaInfo, run: _Run) -> list[HlsVariant]:
        """Read back what ffmpeg wrote: every segment present, whole durations, measured bit rates."""

        def read(playlist: str) -> tuple[MediaPlaylist, list[tuple[float, int]]]:
            path = folder / playlist
            try:
                media = parse_media_playlist(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise FfmpegError(f"ffmpeg wrote no usable {playlist}: {exc}", stderr_tail=run.tail) from None
            files = [(path.parent / uri, seconds) for uri, seconds in media.segments]
            missing = [str(p.name) for p, _ in files if not p.is_file() or p.stat().st_size == 0]
            if not media.ended or not files or missing or media.init is None:
                raise FfmpegError(
                    f"the HLS playlist {playlist} is incomplete (missing: {missing[:5]})", stderr_tail=run.tail
                )
            return media, [(seconds, p.stat().st_size) for p, seconds in files]

        assert info.video is not None
        promised = {info.video.index: _promise(info.video.start, info.video.duration)}
        audio_sizes: list[tuple[float, int]] = []
        audio_peak = 0
        decoded: dict[int, float] = {}
        if plan.audio is not None and plan.audio_playlist is not None:
            track = next((a for a in info.audio if a.index == plan.audio.stream_index), None)
            audio, audio_sizes = read(plan.audio_playlist)
            audio_peak = peak_segment_bitrate(audio_sizes, audio.target_duration)
            if track is not None:
                promised[track.index] = _promise(track.start, track.duration)
                decoded[track.index] = track.start + audio.duration
        variants = []
        for rung in plan.renditions:
            media, sizes = read(rung.playlist)
            decoded[info.video.index] = info.video.start + media.duration
            # A truncated source can still make a short, valid ladder: refuse it like the mp4.
            self._check_lengths(promised, decoded, info, run, whole_file=True)
            assert media.init is not None
            codecs = avc_codecs_attribute((folder / rung.name / media.init).read_bytes())
            if codecs is None:
                raise FfmpegError(f"{rung.name}/{media.init} has no H.264 configuration", stderr_tail=run.tail)
            if plan.audio is not None:
                codecs += f",{HLS_AUDIO_CODECS}"
            variants.append(
                HlsVariant(
                    uri=rung.playlist,
                    width=rung.width,
                    height=rung.height,
                    # The player fetches a video and an audio segment for every
                    # segment of time: the variant's peak includes the audio's.
                    bandwidth=peak_segment_bitrate(sizes, media.target_duration) + audio_peak,
                    average_bandwidth=average_bitrate(sizes) + average_bitrate(audio_sizes),
                    codecs=codecs,
                    frame_rate=plan.frame_rate,
                )
            )
        return variants

    # ------------------------------------------------------------- audio for ASR

    def extract_audio(
        self,
        source: str | os.PathLike[str],
        out_path: str | os.PathLike[str],
        info: MediaInfo,
        track: AudioStream | None = None,
    ) -> AudioExtract | None:
        """Write one audio track of ``source`` (default: the default track) as 16 kHz mono PCM WAV to ``out_path``.

        The WAV sits on the file's timeline: a track that starts late is
        preceded by silence and gaps are filled with silence, so transcript
        times match the video. Returns ``None`` when the upload has no audio
        (a silent screen recording): there is nothing to transcribe, which is
        not an error.

        :raises InputRejected: the audio turned out to be corrupt while decoding.
        :raises StageTimeout: ffmpeg ran past its time budget.
        :raises FfmpegError: any other ffmpeg failure (retryable).
        """
        source, out_path = Path(source), Path(out_path)
        track = track or info.default_audio
        if track is None:
            self.log.info("%s has no audio stream: nothing to transcribe", source.name)
            return None
        started = time.monotonic()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(out_path)
        try:
            timeout = stage_timeout(
                info.duration, factor=self.settings.timeout_factor, floor_seconds=self.settings.timeout_floor_seconds
            )
            run = self._run(
                audio_extract_args(str(source), str(tmp), track.index),  # built with ffmpeg-python
                what=f"extracting audio of {source.name}",
                duration=info.duration,
                timeout=timeout,
                decode_stats=True,
            )
            # 16-bit mono: two bytes a sample. The WAV header (~80 bytes) is
            # under 3 ms of audio, far below the tolerance of the check.
            duration = max(0, tmp.stat().st_size - 44) / (2 * WHISPER_SAMPLE_RATE)
            flags = self._assess_extract(info, track, duration, run)
            tmp.replace(out_path)
        except BaseException:
            _remove([tmp])
            raise
        elapsed = time.monotonic() - started
        self.log.info("Extracted %.2f s of audio (track %d) to %s in %.1f s", duration, track.index, out_path, elapsed)
        return AudioExtract(
            path=out_path,
            duration=round(duration, 3),
            stream_index=track.index,
            elapsed_seconds=elapsed,
            language=track.language,
            flags=flags,
        )

    def _assess_extract(self, info: MediaInfo, track: AudioStream, seconds: float, run: _Run) -> dict[str, str]:
        """The corrupt rule for one decoded audio track; the flags of a playable one."""
        # The track alone is the whole file only in a single-track audio upload;
        # in a video its sound may rightly end before the picture.
        whole_file = info.video is None and len(info.audio) == 1
        flags = self._check_lengths(
            {track.index: _promise(track.start, track.duration)}, {track.index: seconds}, info, run, whole_file
        )
        try:
            flags.update(assess_decode(run.log, what=f"audio track {track.index}"))
        except InputRejected as exc:
            exc.details["ffmpeg"] = run.tail
            raise
        # The silence aresample added: the late start, then every gap (at the track's own rate).
        padded = run.log.silence_samples / (track.sample_rate or WHISPER_SAMPLE_RATE)
        flags.update(timing_flags(None, (), gaps_seconds=padded - track.start))
        video_start = info.video.start if info.video is not None else None
        if video_start is not None and track.start - video_start > TIMING_SLACK_SECONDS:
            flags.update(
                flag("audio_starts_late", f"the sound starts {track.start - video_start:.1f} s after the picture")
            )
        return flags

    # ------------------------------------------------------------------- running

    def _check_lengths(
        self, promised: dict[int, float | None], decoded: dict[int, float], info: MediaInfo, run: _Run, whole_file: bool
    ) -> dict[str, str]:
        try:
            return check_decoded_length(promised, decoded, container_seconds=info.duration, whole_file=whole_file)
        except InputRejected as exc:
            exc.details["ffmpeg"] = run.tail
            raise

    def _run(
        self,
        args: list[str],
        *,
        what: str,
        duration: float,
        timeout: float,
        cwd: Path | None = None,
        decode_stats: bool = False,
    ) -> _Run:
        """Run ffmpeg with ``args`` (in ``cwd``); log progress; enforce ``timeout``; classify failures.

        :param decode_stats: log at ``level+verbose`` so the run's :class:`DecodeLog`
            counts what was decoded, damaged and padded (the corrupt rule's evidence);
            only warnings and errors are kept as text either way.
        """
        if decode_stats:
            args = _verbose(args)
        cmd = [self.ffmpeg, "-progress", "pipe:1", "-nostats", *args]
        self.log.debug("Running %s", cmd)
        started = time.monotonic()
        stderr = DecodeLog(keep_lines=_STDERR_KEEP_LINES)
        progress: list[float] = [0.0]
        # Own process group: on timeout we kill ffmpeg and anything it spawned,
        # and a Ctrl-C/SIGTERM aimed at the worker's group does not race us.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=cwd,
        )
        readers = [
            threading.Thread(target=self._read_progress, args=(proc, what, duration, started, progress), daemon=True),
            threading.Thread(target=_read_lines, args=(proc.stderr, stderr), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            returncode = proc.wait(timeout=timeout)
        except BaseException:
            # Timeout, or the task itself is being killed: never leave ffmpeg behind.
            _kill(proc)
            for reader in readers:
                reader.join(timeout=5)
            tail = "\n".join(stderr.kept[-STDERR_TAIL_LINES:])
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                raise StageTimeout(
                    f"{what} took longer than {timeout:.0f} s (for {duration:.1f} s of media); "
                    f"last ffmpeg output:\n{tail}"
                ) from None
            raise
        for reader in readers:
            reader.join(timeout=10)
        run = _Run(
            returncode=returncode,
            stderr=list(stderr.kept),
            elapsed=time.monotonic() - started,
            log=stderr,
            media_seconds=progress[0],
        )
        if returncode != 0:
            self._raise_failure(what, run)
        return run

    def _raise_failure(self, what: str, run: _Run) -> None:
        text = "\n".join(run.stderr)
        reason = classify_ffmpeg_failure(text)
        if run.returncode < 0:
            # Killed by a signal (OOM killer, operator): the machine's problem.
            reason = None
        message = f"{what} failed (exit {run.returncode}); last ffmpeg output:\n{run.tail}"
        if reason is not None:
            raise InputRejected(reason, message, {"ffmpeg": run.tail})
        raise FfmpegError(message, returncode=run.returncode, stderr_tail=run.tail)

    def _read_progress(
        self, proc: subprocess.Popen[bytes], what: str, duration: float, started: float, furthest: list[float]
    ) -> None:
        assert proc.stdout is not None
        next_percent = _PROGRESS_LOG_STEP_PERCENT
        last_log = started
        for raw in proc.stdout:
            done = progress_seconds(raw.decode("ascii", "replace"))
            if done is not None:
                furthest[0] = max(furthest[0], done)
            if done is None or duration <= 0:
                continue
            percent = progress_percent(done, duration)
            now = time.monotonic()
            if percent >= next_percent or now - last_log >= _PROGRESS_LOG_MIN_SECONDS:
                self.log.info("%s: %.0f%% (%.1f of %.1f s) after %.0f s", what, percent, done, duration, now - started)
                while next_percent <= percent:
                    next_percent += _PROGRESS_LOG_STEP_PERCENT
                last_log = now


def _read_lines(stream: object, sink: DecodeLog) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            sink.feed(line)


def _verbose(args: list[str]) -> list[str]:
    """``args`` logging at ``level+verbose``: every line tagged with its level, end-of-run statistics included."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "-loglevel":
            out[i + 1] = "level+verbose"
            return out
    return ["-loglevel", "level+verbose", *out]


def _promise(start: float, duration: float | None) -> float | None:
    """Where a stream's index says it ends; ``None`` when the container keeps no per-stream duration."""
    return start + duration if duration else None


def _span(start: float, duration: float | None, fallback: float) -> Span:
    return Span(start, start + (duration if duration else fallback))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def audio_extract_args(source: str, dest: str, stream_index: int) -> list[str]:
    """16 kHz mono 16-bit PCM WAV of one audio track, as Whisper wants it.

    Always read from the upload, never from the web mp4: that would add a lossy
    AAC generation and lose the track choice. The command line is built with
    ffmpeg-python's stream graph (a pure builder that starts no process);
    :meth:`FfmpegHook._run` executes it with a timeout, progress and a
    process-group kill, which ffmpeg-python's own ``run`` does not offer.
    """
    import ffmpeg  # ffmpeg-python

    track = ffmpeg.input(source)[str(stream_index)]
    output = ffmpeg.output(
        track,
        dest,
        # Pad a late start (first_pts=0) and fill gaps (async=1) with silence: the
        # WAV then keeps the file's timeline, and subtitles stay in sync.
        af="aresample=async=1:first_pts=0",
        vn=None,
        sn=None,
        dn=None,
        map_metadata="-1",
        ac=1,
        ar=WHISPER_SAMPLE_RATE,
        acodec="pcm_s16le",
        f="wav",
    )
    return ["-hide_banner", "-nostdin", "-y", "-loglevel", "warning", *(str(arg) for arg in output.get_args())]
