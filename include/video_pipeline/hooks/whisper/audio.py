"""Reading the audio Whisper decodes: the ffmpeg stage's 16 kHz mono WAV as one float32 array.

Both backends and the VAD take the same array, so it is read once per pass and
never held twice.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


SAMPLE_RATE = 16_000


def read_wav(path: Path) -> np.ndarray:
    """The audio as float32 samples in [-1, 1] at 16 kHz, holding one copy in memory.

    The ffmpeg stage writes 16-bit mono 16 kHz WAV; that is read directly,
    block by block into one preallocated array. Anything else is decoded and
    resampled by PyAV (through faster-whisper), which costs a transient copy.
    """
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        with wave.open(str(path), "rb") as wav:
            native = wav.getframerate() == SAMPLE_RATE and wav.getnchannels() == 1 and wav.getsampwidth() == 2
            if native:
                total = wav.getnframes()
                audio = np.empty(total, dtype=np.float32)
                block = SAMPLE_RATE * 60
                done = 0
                while done < total:
                    data = np.frombuffer(wav.readframes(block), dtype="<i2")
                    if not data.size:  # a header that promised more than the file holds
                        break
                    audio[done : done + data.size] = data
                    done += data.size
                audio = audio[:done]
                audio /= 32768.0
                return audio
    except (wave.Error, EOFError):
        pass
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)
