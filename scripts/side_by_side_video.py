"""A clip next to its stylizations by several models, as one video (flicker is seen best in motion).

    python scripts/side_by_side_video.py out.mp4 --video clip.mp4 \
        --model "no temporal losses=runs/a/stylizer.pt" --model "temporal losses=candy" \
        --height 180 --max-frames 90

Each frame is resized to ``--height`` (aspect kept), stylized by every model at that size
(``--model NAME=MODEL``, MODEL a file or a bundled style name) and written as one row:
input | model 1 | model 2 ..., each tile labelled. Same frame rate as the clip, no audio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from reconet.image import tensor_to_uint8, uint8_to_tensor
from reconet.media import Frame, SizeSpec, VideoWriter, open_frames
from reconet.models.artifact import load_stylizer
from reconet.models.pretrained import resolve_model


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """(H, W, 3) uint8 with ``text`` in white on a dark band at the top."""
    tile = tile.copy()
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), thickness=-1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path, help="video to write (.mp4)")
    parser.add_argument("--video", required=True, help="input clip")
    parser.add_argument("--model", action="append", required=True, help="NAME=MODEL (file or bundled style)")
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    models = []
    for text in args.model:
        name, _, model = text.rpartition("=")
        network, _ = load_stylizer(resolve_model(model))
        models.append((name or model, network))
    with open_frames(args.video, max_frames=args.max_frames) as probe:
        width = max(2, round(probe.size[0] * args.height / probe.size[1] / 2) * 2)
    size = SizeSpec(size_wh=(width, args.height))
    with open_frames(args.video, size=size, max_frames=args.max_frames) as frames:
        row_size = (width * (1 + len(models)), args.height)
        with VideoWriter(args.output, size=row_size, fps=frames.fps, overwrite=args.overwrite) as writer:
            for frame in frames.frames():
                image = uint8_to_tensor(frame.image).unsqueeze(0)  # (1, 3, H, W)
                tiles = [label(frame.image, "input")]
                for name, network in models:
                    tiles.append(label(tensor_to_uint8(network(image).output[0]), name))
                writer.write(Frame(frame.index, np.concatenate(tiles, axis=1), frame.time, frame.duration))
    print(f"wrote {args.output} (columns: input, {', '.join(name for name, _ in models)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
