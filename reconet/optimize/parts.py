"""The work directory of a resumable run (``OUTPUT.parts/`` next to the output).

Layout::

    manifest.json            what the frames were made with (settings, style, input, size)
    frames/frame_000000.png  finished stylized frames, 8-bit, each written atomically
    flows/<sha>.flo          cached optical flows (see reconet.optimize.flow_cache)

A frame file exists only once its optimization finished (temporary name, then rename), so after
an interruption the finished frames are exactly the files present. A run over the same input
with the same settings continues after them; a run with different settings refuses to mix its
frames with the old ones (:class:`ResumeMismatchError`) unless told to restart.

The frames are stored in 8 bits, and the uninterrupted run quantizes every frame to 8 bits
before using it as the next frame's start (:mod:`reconet.optimize.sequence`), so a resumed run
continues from exactly the image the uninterrupted run would have used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from reconet.fileio import atomic_path, write_json
from reconet.image import load_image, save_image

MANIFEST = "manifest.json"
FORMAT = "reconet-optimize-parts"
VERSION = 1


class ResumeMismatchError(ValueError):
    """The work directory holds frames made with other settings or another input."""


def parts_dir_for(output: str | Path) -> Path:
    """``OUTPUT.parts`` next to the output (``clip.mp4`` -> ``clip.mp4.parts``)."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


class PartsDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.frames_dir = self.path / "frames"
        self.flows_dir = self.path / "flows"

    def __repr__(self) -> str:
        return f"PartsDir({str(self.path)!r})"

    # -- manifest ---------------------------------------------------------------------------
    def open(self, fingerprint: dict[str, Any], *, restart: bool = False) -> int:
        """Create the directory or check that it belongs to this run; returns the number of
        frames already finished (0 for a new directory).

        Args:
            fingerprint: JSON-able description of everything that determines the frames.
            restart: discard finished frames made with other settings instead of refusing.
        """
        fingerprint = json.loads(json.dumps(fingerprint))  # normalize tuples etc.
        manifest_path = self.path / MANIFEST
        if self.path.exists() and not self.path.is_dir():
            raise ResumeMismatchError(f"{self.path}: exists and is not a work directory")
        if manifest_path.is_file():
            try:
                stored = json.loads(manifest_path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                stored = {"unreadable": str(err)}
            if stored.get("fingerprint") != fingerprint or stored.get("format") != FORMAT:
                if not restart:
                    changed = _differences(stored.get("fingerprint", stored), fingerprint)
                    raise ResumeMismatchError(
                        f"{self.path}: holds frames from a run with different {', '.join(changed) or 'settings'}; "
                        "delete it or restart (--restart) to discard them"
                    )
                self.clear()
            elif restart:
                self.clear()
        elif self.path.is_dir() and any(self.path.iterdir()) and not restart:
            raise ResumeMismatchError(f"{self.path}: exists without {MANIFEST}; delete it or restart (--restart)")
        elif restart and self.path.is_dir():
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        self.frames_dir.mkdir(exist_ok=True)
        if not manifest_path.is_file():
            manifest = {"format": FORMAT, "version": VERSION, "fingerprint": fingerprint}
            write_json(manifest_path, manifest)
        return len(self.finished())

    def clear(self) -> None:
        """Remove finished frames and the manifest (cached flows stay valid: they are keyed by content)."""
        if self.frames_dir.is_dir():
            shutil.rmtree(self.frames_dir)
        (self.path / MANIFEST).unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the whole work directory (after the output was assembled)."""
        shutil.rmtree(self.path, ignore_errors=True)

    # -- frames -----------------------------------------------------------------------------
    def frame_path(self, index: int) -> Path:
        return self.frames_dir / f"frame_{index:06d}.png"

    def finished(self) -> list[int]:
        if not self.frames_dir.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.frames_dir.glob("frame_*.png") if p.stem[6:].isdigit())

    def load(self, index: int) -> torch.Tensor | None:
        """(3, H, W) finished frame ``index`` or None."""
        path = self.frame_path(index)
        return load_image(path) if path.is_file() else None

    def save(self, index: int, image: torch.Tensor) -> Path:
        """Write frame ``index`` ((3, H, W) in [0, 1]) under a temporary name, then rename."""
        path = self.frame_path(index)
        with atomic_path(path) as temp:
            save_image(temp, image)
        return path


def _differences(old: Any, new: dict[str, Any], prefix: str = "") -> list[str]:
    if not isinstance(old, dict):
        return [prefix.rstrip(".") or "settings"]
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed
