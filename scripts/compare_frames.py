"""Side-by-side frames: each input image (rows) next to its stylization by each model (columns).

    python scripts/compare_frames.py grid.jpg --image frame.png --image other.jpg \
        --model temporal=runs/a/stylizer.pt --model no_temporal=runs/b/stylizer.pt --height 240
    python scripts/compare_frames.py styles.jpg --image frame.png --paintings \
        --model udnie=multi.pt --model wave=multi.pt --model blend=multi.pt@udnie:0.5,wave:0.5

``--model NAME=MODEL[@STYLE]``: a style (or blend) of a multi-style model, by default the style
called NAME. ``--paintings`` adds a first row with each column's painting (the style image named
in the model's style table, from the bundled styles), so a style can be judged beside its source.

Each row starts with the input, resized to ``--height`` (aspect kept); the models run on that
resized input, so every tile is what the model makes at that size. The content-structure score
of each tile against its input is printed (``reconet.evaluation.structure``), so the picture
and the number can be read together. Writes one JPEG or PNG (by the suffix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from reconet.evaluation.structure import content_structure
from reconet.image import load_image, save_image
from reconet.models.artifact import load_stylizer
from reconet.models.pretrained import resolve_model
from reconet.models.style_mix import select_style
from reconet.resources import asset_path


def _resize(image: torch.Tensor, height: int) -> torch.Tensor:
    """(3, H, W) -> (3, height, W') with the aspect kept (W' even)."""
    width = max(2, round(image.shape[-1] * height / image.shape[-2] / 2) * 2)
    resized = F.interpolate(image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].clamp(0, 1)


def _cover(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) scaled to cover ``size`` (h, w) and centre-cropped to it."""
    height, width = size
    scale = max(height / image.shape[-2], width / image.shape[-1])
    scaled = _resize(image, max(height, round(image.shape[-2] * scale)))
    top, left = (scaled.shape[-2] - height) // 2, max(0, (scaled.shape[-1] - width) // 2)
    tile = scaled[:, top : top + height, left : left + width]
    return F.pad(tile, (0, width - tile.shape[-1]), value=1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path, help="grid image to write (.jpg or .png)")
    parser.add_argument("--image", type=Path, action="append", required=True, help="input image (repeatable)")
    parser.add_argument("--model", action="append", required=True, help="NAME=MODEL: a stylizer.pt, a checkpoint or a bundled style name")
    parser.add_argument("--height", type=int, default=240, help="tile height in pixels")
    parser.add_argument("--paintings", action="store_true", help="a first row with each column's painting")
    args = parser.parse_args(argv)

    models = []
    paintings = []
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not path:
            name, path = Path(spec).stem, spec
        path, _, style = path.partition("@")
        network, meta = load_stylizer(resolve_model(path))
        if network.num_styles > 1:
            network, meta = select_style(network, meta, style or name, where=path)
        models.append((name, network.eval()))
        image = meta.get("style_image")
        if image is None and meta.get("style_mix"):  # a multi-style row: its table entry
            rows_by_name = {row["name"]: row for row in meta.get("styles", [])}
            first = max(meta["style_mix"], key=meta["style_mix"].get)
            image = rows_by_name.get(first, {}).get("style_image")
        paintings.append(Path(asset_path(f"styles/{image}")) if image else None)

    rows = []
    if args.paintings:
        first = _resize(load_image(args.image[0]), args.height)
        tiles = [torch.ones_like(first)]
        for painting in paintings:
            tile = torch.ones_like(first)
            if painting is not None and painting.is_file():
                tile = _cover(load_image(painting), tuple(first.shape[-2:]))
            tiles.append(tile)
        rows.append(torch.cat(tiles, dim=2))
    for image_path in args.image:
        content = _resize(load_image(image_path), args.height)  # (3, h, w)
        tiles = [content]
        scores = []
        for name, network in models:
            with torch.inference_mode():
                output = network(content[None]).output.clamp(0, 1)  # (1, 3, h, w)
            tiles.append(output[0])
            scores.append(f"{name} {float(content_structure(output, content[None])[0]):.2f}")
        print(f"{image_path.name}: content structure " + ", ".join(scores))
        rows.append(torch.cat(tiles, dim=2))
    width = max(row.shape[-1] for row in rows)
    rows = [F.pad(row, (0, width - row.shape[-1])) for row in rows]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_image(args.output, torch.cat(rows, dim=1))
    print(f"wrote {args.output} (columns: input, {', '.join(name for name, _ in models)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
