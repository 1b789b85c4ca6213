"""Writing outputs safely: temporary names beside the final file, whole-folder swaps, cleanup.

Every output is written under a hidden ``.part`` name and renamed into place at
the end, so a listing never sees a half-written file and a failed attempt leaves
nothing that looks finished.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path


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
