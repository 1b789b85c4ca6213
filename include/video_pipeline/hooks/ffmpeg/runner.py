"""Running ffmpeg: which binaries, one command with a time budget, live progress, failure classes.

:class:`FfmpegRunner` is the base every part of
:class:`~include.video_pipeline.hooks.ffmpeg.FfmpegHook` builds on: it finds
ffmpeg and ffprobe, runs a command in its own process group (killed whole on a
timeout or when the task dies), logs ``-progress`` as it goes and turns a failed
run into ``InputRejected`` (the upload's fault) or :class:`FfmpegError` (retryable).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from airflow.sdk import BaseHook

from include.video_pipeline.config import TranscodeSettings
from include.video_pipeline.core.errors import InputRejected, StageTimeout
from include.video_pipeline.core.integrity import DecodeLog, Span, check_decoded_length
from include.video_pipeline.core.media import MediaInfo, classify_ffmpeg_failure, progress_percent, progress_seconds
from include.video_pipeline.hooks.ffmpeg.results import FfmpegError

# Lines of ffmpeg's stderr quoted in error messages (the end is where the cause is).
STDERR_TAIL_LINES = 20
# Lines kept for classifying a failure: decode errors can be printed long before the exit.
_STDERR_KEEP_LINES = 400
# Log progress at most this often, so an hour-long transcode does not flood the task log.
_PROGRESS_LOG_STEP_PERCENT = 10.0
_PROGRESS_LOG_MIN_SECONDS = 30.0


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


class FfmpegRunner(BaseHook):
    """The ffmpeg and ffprobe binaries and how one command runs; the base of :class:`FfmpegHook`'s parts.

    Takes :class:`~include.video_pipeline.hooks.ffmpeg.FfmpegHook`'s parameters.
    """

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
