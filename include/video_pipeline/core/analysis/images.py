"""Frames of the video sent with a prompt: which image formats a provider is given.

Providers need each image's MIME type; it is read from the magic bytes, and
anything but JPEG, PNG or WebP is refused.
"""

from __future__ import annotations


def image_mime_type(data: bytes) -> str:
    """The MIME type of a JPEG, PNG or WebP image from its magic bytes; ValueError otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError("not a JPEG, PNG or WebP image")
