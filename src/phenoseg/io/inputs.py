"""Finding the inputs of a batch (files, folders, globs, plate layouts) and where each one's outputs go."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from phenoseg.errors import PhenosegError
from phenoseg.io.images import SUPPORTED_SUFFIXES

SLIDE_ONLY_SUFFIXES = {".svs", ".ndpi", ".scn", ".zarr"}


def _is_input(f: Path) -> bool:
    return (f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES) or f.suffix.lower() in SLIDE_ONLY_SUFFIXES


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    """The images of a folder (and, recursively, of its sub-folders, skipping hidden folders, OME-Zarr
    stores as folders of their own, and the ``phenoseg/`` output folders of earlier runs)."""
    out = sorted(f for f in folder.iterdir() if _is_input(f))
    if recursive:
        for sub in sorted(d for d in folder.iterdir() if d.is_dir() and d.suffix.lower() != ".zarr"):
            if not sub.name.startswith(".") and sub.name != "phenoseg":
                out += _folder_images(sub, True)
    return out


def find_inputs(inputs: Sequence[str | os.PathLike], recursive: bool = False) -> list[tuple[Path, Path]]:
    """(input, its folder relative to what was given) for every input: files as given (``.``), folders
    expanded to their images (sorted; with ``recursive`` those of sub-folders too, relative to the folder
    given), globs expanded (relative to the pattern's folder before its first wildcard)."""
    if recursive and not any(Path(str(i)).is_dir() or _is_glob(str(i)) for i in inputs):
        raise PhenosegError("recursive= applies to folders (and globs); none of the inputs is one")
    out: list[tuple[Path, Path]] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if _is_glob(text):
            base = Path(*[part for part in _until_magic(Path(text).parts)]) if Path(text).parts else Path(".")
            for m in sorted(glob.glob(text, recursive=recursive)):
                f = Path(m)
                if f.suffix.lower() in SUPPORTED_SUFFIXES | SLIDE_ONLY_SUFFIXES:
                    out.append((f, _relative(f.parent, base)))
            continue
        if p.is_dir() and p.suffix.lower() != ".zarr":
            out += [(f, _relative(f.parent, p)) for f in _folder_images(p, recursive)]
        else:
            out.append((p, Path(".")))
    return out


def _is_glob(text: str) -> bool:
    """A pattern rather than a path (it does not exist and holds a wildcard)."""
    return not Path(text).exists() and any(ch in text for ch in "*?[")


def _until_magic(parts: tuple[str, ...]) -> list[str]:
    kept = []
    for part in parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        kept.append(part)
    return kept or ["."]


def _relative(folder: Path, base: Path) -> Path:
    try:
        return folder.resolve().relative_to(base.resolve())
    except ValueError:
        return Path(".")


def expand_inputs(inputs: Sequence[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """The input files of :func:`find_inputs`."""
    return [f for f, _ in find_inputs(inputs, recursive)]


def plan_output_dirs(found: list[tuple[Path, Path]], output_dir: str | os.PathLike | None) -> dict[Path, Path]:
    """Where each input's outputs go (``found`` from :func:`find_inputs`), so that no two inputs write the
    same files.

    With one output folder, the sub-folders of a folder or glob given are mirrored in it (``plate/`` with
    ``--recursive``: ``plate/A01/f1.tif`` → ``OUT/A01/f1_*``); files given one by one go to the folder
    itself. Without one, outputs go to a ``phenoseg/`` folder beside each input. Two inputs that would still
    write the same files (``x.jpg`` and ``x.tif``, or two ``f1.tif`` given from different folders) are
    refused before any work starts."""
    if output_dir is None:
        dirs = {f: f.parent / "phenoseg" for f, _ in found}
    else:
        dirs = {f: Path(output_dir) / rel for f, rel in found}
    seen: dict[tuple[Path, str], Path] = {}
    for f, _ in found:
        key = (dirs[f].resolve(), image_stem(f).lower())
        if key in seen and seen[key].resolve() != f.resolve():
            raise PhenosegError(f"{seen[key]} and {f} would write the same outputs ({image_stem(f)}_*) in "
                                f"{dirs[f]}: rename one, give their common folder with --recursive, or run "
                                "them separately")
        seen[key] = f
    return dirs


def image_stem(path: Path) -> str:
    """File name without its image suffix (".ome.tif" counts as one suffix)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    out, p = [], Path(folder).absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders of this list that are (now) empty, deepest first: what a failed input created."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            break


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".phenoseg-write-test")
        os.close(fd)
        os.remove(tmp)
    except OSError as exc:
        raise PhenosegError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from exc
