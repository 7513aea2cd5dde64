"""Files in and out of a session as tar streams (the archive API takes and gives tar).

Unpacking what a sandbox sends back is done here, member by member, never with
``extractall``: a sandbox controls the archive, so absolute names, ``..``, links that
point out of the destination, devices and FIFOs are refused, setuid bits dropped, and
every path is checked again on the real filesystem before it is written.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tarfile
from pathlib import Path

import msgspec

from sandbox.errors import ContainerError


class Received(msgspec.Struct, frozen=True):
    """What came out of a sandbox: for the audit (digest of the tar stream, sizes)."""

    files: int
    bytes: int  # file contents
    sha256: str  # of the tar stream as received


def split(path: str) -> tuple[str, str]:
    """(directory, name) of an absolute path inside the sandbox."""
    norm = posixpath.normpath(path)
    if not posixpath.isabs(norm) or norm == "/":
        raise ContainerError(f"{path!r}: a path inside the sandbox must be absolute and name a file or directory")
    return posixpath.dirname(norm), posixpath.basename(norm)


def tar_of_bytes(name: str, data: bytes, mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode & 0o777
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_of_dir(local_dir: str | os.PathLike[str], name: str) -> tuple[bytes, int]:
    """A tar of ``local_dir`` whose top directory is called ``name`` (links kept as links)."""
    if not Path(local_dir).is_dir():
        raise ContainerError(f"copy_in: {local_dir} is not a directory")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(local_dir), arcname=name, recursive=True)
    data = buf.getvalue()
    return data, len(data)


def one_file(data: bytes, path: str) -> bytes:
    """The single regular file of an archive fetched for ``path``."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        if len(members) != 1 or not members[0].isfile():
            raise ContainerError(f"read_file: {path} is not a regular file in the sandbox "
                                 "(use copy_out for directories)")
        fh = tar.extractfile(members[0])
        return fh.read() if fh is not None else b""


def _inside(root: str, target: str) -> bool:
    return target == root or target.startswith(root + os.sep)


def unpack(data: bytes, local_dir: str | os.PathLike[str]) -> Received:
    """Unpack an archive from a sandbox into ``local_dir`` (made if missing), safely."""
    os.makedirs(local_dir, exist_ok=True)
    root = os.path.realpath(local_dir)
    files = size = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            name = posixpath.normpath(member.name)
            if name.startswith("/") or name == ".." or name.startswith("../"):
                raise ContainerError(f"copy_out: refused member {member.name!r} (outside the destination)")
            dest = os.path.join(root, name)
            if not _inside(root, os.path.realpath(os.path.dirname(dest))):
                raise ContainerError(f"copy_out: refused member {member.name!r} (its directory leads outside)")
            if member.isdir():
                os.makedirs(dest, exist_ok=True)
                os.chmod(dest, (member.mode & 0o777) | 0o700)
            elif member.isfile():
                fh = tar.extractfile(member)
                if os.path.lexists(dest):
                    os.unlink(dest)  # never write through a link that is already there
                with open(dest, "xb") as out:
                    out.write(fh.read() if fh is not None else b"")
                os.chmod(dest, member.mode & 0o777)
                files += 1
                size += member.size
            elif member.issym():
                link = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                if member.linkname.startswith("/") or link == ".." or link.startswith("../"):
                    raise ContainerError(f"copy_out: refused link {member.name!r} -> {member.linkname!r}")
                os.symlink(member.linkname, dest)
            else:
                raise ContainerError(f"copy_out: refused member {member.name!r} (only files, directories and "
                                     "links inside the copy are taken)")
    return Received(files=files, bytes=size, sha256=hashlib.sha256(data).hexdigest())
