"""The web rendition: ``video.mp4`` (copied or re-encoded), then its poster, thumbnails and HLS ladder.

The plan (copy or re-encode, sizes, filters, which audio tracks) comes from
:mod:`include.video_pipeline.core.media`; this part runs it, reads the result
back to refuse a damaged source or flag an odd one, and publishes every file
together or none.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from include.video_pipeline.core.audio_tracks import tracks_for_video
from include.video_pipeline.core.errors import InputRejected
from include.video_pipeline.core.integrity import assess_decode, check_decoded_length, flag, timing_flags
from include.video_pipeline.core.media import (
    AudioStream,
    MediaInfo,
    parse_probe,
    plan_transcode,
    stage_timeout,
    transcode_args,
)
from include.video_pipeline.hooks.ffmpeg.files import _remove, _temp_name
from include.video_pipeline.hooks.ffmpeg.hls import HlsLadder
from include.video_pipeline.hooks.ffmpeg.probe import FfmpegProbe
from include.video_pipeline.hooks.ffmpeg.results import (
    POSTER_NAME,
    THUMBNAILS_NAME,
    THUMBNAILS_VTT_NAME,
    VIDEO_NAME,
    HlsResult,
    TranscodeResult,
)
from include.video_pipeline.hooks.ffmpeg.runner import _promise, _Run, _span
from include.video_pipeline.hooks.ffmpeg.thumbnails import Stills


class Transcoding(FfmpegProbe, Stills, HlsLadder):
    """Make the web rendition of an upload (:meth:`transcode`)."""

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
            self._make_thumbnails(tmp_video, tmp_sheet, tmp_vtt, out, name=source.name)
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
