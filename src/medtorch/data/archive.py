"""Unpacking downloaded archives without letting a member write outside its folder.

Every archive medtorch unpacks goes through :func:`safe_extract` (the registry's UCI zip is
not unpacked: one named member is copied to a fixed path). Before anything is
written, each member is checked: no absolute path, no ``..`` leaving the destination, no
link (symbolic or hard) pointing out of it, no device file, FIFO or other special file. One
bad member refuses the whole archive with one line naming the archive and the member, so
nothing is half-extracted. Python's own ``filter="data"`` (3.12+, backported to recent 3.10
and 3.11 patch releases) is applied as a second guard where available.
"""

from __future__ import annotations

import lzma
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from medtorch.errors import DataError


def _refuse(archive: Path, member: str, why: str) -> DataError:
    return DataError(
        f"expected archive members inside the destination folder, got {member!r} ({why}) "
        f"in {archive}; refused: the archive is damaged or crafted, fetch it again from "
        "its publisher"
    )


def _inside(dest: Path, name: str) -> bool:
    target = (dest / name).resolve()
    return target == dest or dest in target.parents


def _check_name(archive: Path, dest: Path, name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise _refuse(archive, name, "an absolute path")
    if ".." in pure.parts or not _inside(dest, str(pure)):
        raise _refuse(archive, name, "a path leaving the folder")


def _check_tar(archive: Path, dest: Path, tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tf.getmembers()
    for m in members:
        _check_name(archive, dest, m.name)
        if m.issym() or m.islnk():
            base = (dest / m.name).parent if m.issym() else dest
            if PurePosixPath(m.linkname).is_absolute() or not _inside(base, m.linkname):
                raise _refuse(archive, m.name, f"a link to {m.linkname!r} outside the folder")
        elif not (m.isfile() or m.isdir()):
            raise _refuse(archive, m.name, "a device or other special file")
    return members


def safe_extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract a tar (any compression) or zip archive into ``dest``; the files written.

    >>> safe_extract("cinc2017.tar.xz", "data/cinc2017")  # doctest: +SKIP
    """
    archive, dest = Path(archive), Path(dest)
    root = dest.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_name(archive, root, info.filename)
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode == 0o120000:
                        raise _refuse(archive, info.filename, "a symbolic link")
                    if mode not in (0, 0o100000, 0o040000):  # a device, FIFO or socket
                        raise _refuse(archive, info.filename, "a device or other special file")
                dest.mkdir(parents=True, exist_ok=True)
                zf.extractall(dest)
                return [dest / i.filename for i in infos if not i.is_dir()]
        with tarfile.open(archive) as tf:
            members = _check_tar(archive, root, tf)
            dest.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover (old Python without extraction filters)
                tf.extractall(dest, members=members)
            return [dest / m.name for m in members if m.isfile()]
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise DataError(
            f"expected a readable archive, got {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'cut short'} in {archive}; "
            "the download is damaged: fetch it again"
        ) from None
