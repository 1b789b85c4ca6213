"""Audio for speech recognition: one track of the upload as the 16 kHz mono WAV Whisper reads.

The WAV keeps the file's timeline (a late start and gaps become silence) so that
subtitle times match the video; a track that turns out corrupt while decoding is
refused by the same rule as the video.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from include.video_pipeline.core.errors import InputRejected
from include.video_pipeline.core.integrity import TIMING_SLACK_SECONDS, assess_decode, flag, timing_flags
from include.video_pipeline.core.media import WHISPER_SAMPLE_RATE, AudioStream, MediaInfo, stage_timeout
from include.video_pipeline.hooks.ffmpeg.files import _remove, _temp_name
from include.video_pipeline.hooks.ffmpeg.results import AudioExtract
from include.video_pipeline.hooks.ffmpeg.runner import FfmpegRunner, _promise, _Run


class AudioExtraction(FfmpegRunner):
    """Extract one audio track for Whisper."""

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
