"""`phenoseg export`: whole-pipeline TorchScript or a BioImage.IO package."""

from __future__ import annotations

import argparse
from pathlib import Path

from phenoseg.io.inputs import ensure_writable


def run(args: argparse.Namespace) -> int:
    """`phenoseg export --format torchscript`."""
    from phenoseg.export.torchscript import export_torchscript
    from phenoseg.models.zoo import load_model

    out = Path(args.output)
    ensure_writable(out.parent if str(out.parent) else Path("."))
    net = load_model(args.model)
    if args.format == "bioimageio":
        from phenoseg.export.bioimageio import export_bioimageio, licence_id, validate

        path = export_bioimageio(net, out, licence_id(net.config.license))
        if not args.no_validate:
            if path.suffix == ".zip":
                import tempfile
                import zipfile

                with tempfile.TemporaryDirectory() as tmp:
                    zipfile.ZipFile(path).extractall(tmp)
                    status = validate(Path(tmp) / "rdf.yaml")
            else:
                status = validate(path / "rdf.yaml")
            print(f"bioimageio.spec validation: {status}")
        print(f"wrote {path}")
        return 0
    path = export_torchscript(net, out)
    print(f"wrote {path} (model {net.config.name}, {net.config.pixel_size_um:g} µm/px, "
          f"channels {', '.join(net.config.channel_names)}, targets {', '.join(net.config.targets)})")
    return 0
