"""`phenoseg export`: whole-pipeline TorchScript or a BioImage.IO package."""

from __future__ import annotations

import argparse
from pathlib import Path

from phenoseg.errors import PhenosegError
from phenoseg.io.inputs import ensure_writable


def run(args: argparse.Namespace) -> int:
    """`phenoseg export --format torchscript`."""
    from phenoseg.export.torchscript import export_torchscript
    from phenoseg.models.zoo import load_model

    out = Path(args.output)
    ensure_writable(out.parent if str(out.parent) else Path("."))
    net = load_model(args.model)
    if args.format == "bioimageio":
        from phenoseg.export.bioimageio import export_bioimageio, licence_id
        from phenoseg.models.zoo import resolve_model_dir

        path, status = export_bioimageio(net, out, licence_id(net.config.license), args.maintainer,
                                         check=not args.no_validate, model_dir=resolve_model_dir(args.model))
        print(f"bioimageio.spec validation: {status}")
        if not args.maintainer:
            print("note: bioimage.io uploads need a maintainer: --maintainer GITHUB_USER")
        print(f"wrote {path}")
        return 0
    if args.maintainer:
        raise PhenosegError("--maintainer applies to --format bioimageio")
    path = export_torchscript(net, out)
    print(f"wrote {path} (model {net.config.name}, {net.config.pixel_size_um:g} µm/px, "
          f"channels {', '.join(net.config.channel_names)}, targets {', '.join(net.config.targets)})")
    return 0
