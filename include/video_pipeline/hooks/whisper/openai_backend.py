"""The openai-whisper backend: the reference PyTorch implementation, fed batches of speech.

openai-whisper decodes a whole input at once, so the audio is cut into speech
chunks (Silero VAD, as faster-whisper does, or the quietest moments when VAD is
off), decoded batch by batch, and every time is mapped back to the original audio.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from include.video_pipeline.core.transcript import Segment, Word
from include.video_pipeline.hooks.whisper.audio import SAMPLE_RATE
from include.video_pipeline.hooks.whisper.decoding import DecodeOptions, _Decoded
from include.video_pipeline.hooks.whisper.models import LoadedModel

if TYPE_CHECKING:
    import numpy as np

# openai-whisper has no streaming API: it returns only when the whole input is
# decoded, and its mel spectrogram of the whole input is ~10x the audio's size
# (an hour would need several GB). Feeding it batches of this much speech, cut
# in silences, bounds memory and gives progress lines as batches finish.
OPENAI_BATCH_SECONDS = 300.0


def _speech_chunks(audio: np.ndarray, vad: bool) -> list[dict[str, int]]:
    """Sample ranges to decode: Silero VAD's speech, or the whole audio cut in its quietest moments."""
    if vad:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        return [{"start": c["start"], "end": c["end"]} for c in get_speech_timestamps(audio, VadOptions())]
    import numpy as np

    window = int(OPENAI_BATCH_SECONDS * SAMPLE_RATE)
    search = 10 * SAMPLE_RATE  # look for a pause in the last 10 s before the cut
    frame = SAMPLE_RATE // 50  # 20 ms
    cuts, position = [0], 0
    while audio.shape[0] - position > window:
        low = position + window - search
        frames = audio[low : low + search].reshape(-1, frame)
        quietest = int(np.argmin(np.square(frames).mean(axis=1)))
        position = low + quietest * frame + frame // 2
        cuts.append(position)
    cuts.append(audio.shape[0])
    return [{"start": a, "end": b} for a, b in itertools.pairwise(cuts) if b > a]


def _batches(chunks: Sequence[dict[str, int]], max_samples: int) -> Iterator[list[dict[str, int]]]:
    batch: list[dict[str, int]] = []
    size = 0
    for chunk in chunks:
        length = chunk["end"] - chunk["start"]
        if batch and size + length > max_samples:
            yield batch
            batch, size = [], 0
        batch.append(chunk)
        size += length
    if batch:
        yield batch


def _decode_openai_whisper(
    model: Any,
    loaded: LoadedModel,
    audio: np.ndarray,
    language: str | None,
    options: DecodeOptions,
    on_segment: Callable[[float], None],
) -> _Decoded:
    import numpy as np
    import torch
    import whisper
    from faster_whisper.vad import SpeechTimestampsMap

    fp16 = loaded.compute_type == "float16"
    chunks = _speech_chunks(audio, options.vad)
    probability: float | None = 1.0 if language else None
    out: list[Segment] = []
    previous_text = ""
    for batch in _batches(chunks, int(OPENAI_BATCH_SECONDS * SAMPLE_RATE)):
        if len(batch) == 1:
            speech = audio[batch[0]["start"] : batch[0]["end"]]  # a view: no copy
        else:
            speech = np.concatenate([audio[c["start"] : c["end"]] for c in batch])
        if language is None:
            language, probability = _detect_language_openai(model, speech, fp16)
        result = whisper.transcribe(
            model,
            speech,
            language=language,
            temperature=options.temperature,
            # openai-whisper runs beam search whenever beam_size is set; 1 means greedy.
            beam_size=options.beam_size if options.beam_size > 1 else None,
            best_of=5,
            condition_on_previous_text=options.condition_on_previous_text,
            # Carry context across batches as the decoder does across its 30 s windows.
            initial_prompt=(previous_text[-400:] or None) if options.condition_on_previous_text else None,
            word_timestamps=options.word_timestamps,
            fp16=fp16,
            verbose=None,
        )
        del speech
        ts_map = SpeechTimestampsMap(batch, SAMPLE_RATE)
        for s in result["segments"]:
            segment = _restore_openai_segment(s, ts_map)
            out.append(segment)
            on_segment(segment.end)
        previous_text = result["text"]
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return _Decoded(tuple(out), language, probability)


def _detect_language_openai(model: Any, speech: np.ndarray, fp16: bool) -> tuple[str, float]:
    """Language and its probability from the first 30 s of speech, as faster-whisper does."""
    import torch
    import whisper

    if not model.is_multilingual:
        return "en", 1.0
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(speech), model.dims.n_mels)
    mel = mel.to(model.device).to(torch.float16 if fp16 else torch.float32)
    _, probs = model.detect_language(mel)
    language = max(probs, key=probs.get)
    return language, float(probs[language])


def _restore_openai_segment(s: dict[str, Any], ts_map: Any) -> Segment:
    """Map times in the concatenated speech back to the original audio, as faster-whisper's VAD does."""
    words: list[Word] = []
    for w in s.get("words") or ():
        # Resolve both ends through the chunk holding the word's middle, so a word never straddles a cut.
        chunk = ts_map.get_chunk_index((w["start"] + w["end"]) / 2)
        words.append(
            Word(
                ts_map.get_original_time(w["start"], chunk),
                ts_map.get_original_time(w["end"], chunk),
                w["word"],
                w.get("probability"),
            )
        )
    if words:
        start, end = words[0].start, words[-1].end
    else:
        start = ts_map.get_original_time(s["start"])
        end = ts_map.get_original_time(s["end"], is_end=True)
    return Segment(
        start=start,
        end=end,
        text=s["text"],
        avg_logprob=s.get("avg_logprob"),
        no_speech_prob=s.get("no_speech_prob"),
        compression_ratio=s.get("compression_ratio"),
        words=tuple(words),
    )
