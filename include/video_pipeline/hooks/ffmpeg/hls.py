"""The HLS ladder: every rendition of the video in one ffmpeg process, checked before it is published.

The ladder is encoded into a hidden folder, read back (every segment present,
durations whole, bit rates measured for the master playlist) and only then
swapped into ``<out_dir>/hls/`` whole.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from include.video_pipeline.core.media import (
    HLS_AUDIO_CODECS,
    HLS_DIR,
    HLS_MASTER_NAME,
    AudioStream,
    HlsPlan,
    HlsVariant,
    MediaInfo,
    MediaPlaylist,
    avc_codecs_attribute,
    average_bitrate,
    hls_args,
    parse_media_playlist,
    peak_segment_bitrate,
    plan_hls,
    render_master_playlist,
    stage_timeout,
)
from include.video_pipeline.hooks.ffmpeg.files import _replace_dir
from include.video_pipeline.hooks.ffmpeg.results import FfmpegError, HlsResult
from include.video_pipeline.hooks.ffmpeg.runner import FfmpegRunner, _promise, _Run


class HlsLadder(FfmpegRunner):
    """Encode and check an HLS ladder (``settings.hls_renditions``)."""

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
