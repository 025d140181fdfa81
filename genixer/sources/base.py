"""What the image sources share: storing a file into a world folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def store_file(src: Path, dst: Path, link: str) -> str:
    """Put ``src`` at ``dst`` atomically: a hard link when ``link == "hardlink"`` and the file
    system allows it, else a copy. Returns ``"linked"`` or ``"copied"``."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    how = "copied"
    if link == "hardlink":
        try:
            os.link(src, tmp)
            how = "linked"
        except OSError:
            shutil.copyfile(src, tmp)
    else:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return how
