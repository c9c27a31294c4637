"""The bundled example images as napari sample data (File → Open Sample → phenoseg)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_layer(file: str) -> list[tuple]:
    """One bundled example as layer data, scaled in µm (its pixel size is in the file)."""
    from phenoseg.io.images import read_image

    image = read_image(EXAMPLES / file)
    px = image.pixel_size_um
    data = image.data.transpose(1, 2, 0) if image.rgb else image.data[0]
    kwargs = {"name": Path(file).stem, "rgb": bool(image.rgb),
              "metadata": {"pixel_size_um": px, "channel_names": list(image.channel_names)}}
    if px:
        kwargs["scale"] = (px, px)
    return [(data, kwargs, "image")]


def he_example() -> list[tuple]:
    """H&E tile (DSB 2018, 0.3 µm/px)."""
    return example_layer("he_dsb2018.tif")


def fluorescence_example() -> list[tuple]:
    """Fluorescence nuclei tile (DSB 2018)."""
    return example_layer("fluo_dsb2018.tif")
