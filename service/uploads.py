"""Server-side paths and uploaded archives, made safe: everything must stay inside the data root.

Paths: no ``..``, resolved (symlinks followed) and required to lie inside the root. Archives (zip, tar,
tar.gz): refused whole if any member is absolute, climbs with ``..``, is a link or a device, or if the
file count or the uncompressed size passes the limits (counted on the bytes actually written, not the
headers, so a lying header cannot smuggle a bomb).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import AsyncIterator, Collection, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from service.errors import APIError

CHUNK = 1024 * 1024
INCOMING = ".incoming"
log = logging.getLogger("metarec.service")


def resolve_inside(root: Path, user_path: str) -> Path:
    """The existing path ``user_path`` names (relative to ``root`` or absolute), refused unless strictly inside
    ``root`` (the root itself holds the database, uploads and job outputs: it is never a dataset)."""
    if not user_path or "\x00" in user_path:
        raise APIError(400, "invalid_path", "path must be a non-empty string without NUL bytes")
    try:
        user_path.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError(400, "invalid_path", "path is not valid Unicode (it holds a lone surrogate)") from None
    raw = Path(user_path)
    if ".." in raw.parts:
        raise APIError(400, "path_traversal", f"path {user_path!r} contains '..'; give a path inside the data root")
    candidate = raw if raw.is_absolute() else root / raw
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        if not candidate.absolute().is_relative_to(root):
            raise APIError(400, "path_outside_root", f"path {user_path!r} is outside the data root") from None
        raise APIError(404, "path_not_found", f"no file or folder {user_path!r} under the data root") from None
    if not resolved.is_relative_to(root):
        raise APIError(400, "path_outside_root",
                       f"path {user_path!r} resolves outside the data root (through '..' or a symlink)")
    if resolved == root:
        raise APIError(400, "path_is_data_root", "the data root itself cannot be used; name a folder or file "
                       "inside it")
    return resolved


def check_tree_inside(root: Path, top: Path) -> None:
    """Refuse (400 naming the link) a folder holding a symlink, at any depth, that resolves outside ``root``:
    the dataset reader follows links, so every file it could read must stay inside the data root."""
    if not top.is_dir():
        return
    seen: set[Path] = set()
    pending = [top]
    while pending:
        folder = pending.pop()
        real = folder.resolve()
        if real in seen:  # a link loop (or two links to one folder): each real folder is walked once
            continue
        seen.add(real)
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(root):
                        rel = path.relative_to(top).as_posix()
                        raise APIError(400, "path_outside_root", f"{rel!r} inside the dataset is a symlink that "
                                       "resolves outside the data root", {"link": rel})
                if entry.is_dir(follow_symlinks=True):
                    pending.append(path)


@contextlib.contextmanager
def upload_lock(uploads_dir: Path, ident: str) -> Iterator[None]:
    """Hold ``.incoming/<id>.lock`` (flock) while an upload is saved, extracted and registered; the kernel drops
    the lock when the process dies, which is how :func:`remove_orphans` tells a dead upload from a live one."""
    incoming = uploads_dir / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{ident}.lock"
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _held(lock: Path) -> bool:
    """Whether a live process holds this upload lock."""
    try:
        with lock.open("r") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except FileNotFoundError:
        return False
    return False


def remove_orphans(uploads_dir: Path, registered: Collection[str]) -> list[str]:
    """Delete what a killed upload left behind: partial archives and extraction folders of uploads that are
    neither registered nor in progress in a live process (its lock is free). Returns the removed ids."""
    incoming = uploads_dir / INCOMING
    if not uploads_dir.is_dir():
        return []
    live = {p.stem for p in incoming.glob("*.lock") if _held(p)} if incoming.is_dir() else set()
    removed: set[str] = set()
    if incoming.is_dir():
        for p in incoming.iterdir():
            ident = p.name.split(".", 1)[0]
            if ident not in live:
                p.unlink(missing_ok=True)
                removed.add(ident)
    for p in uploads_dir.iterdir():
        if p.name != INCOMING and p.name.startswith("ds_") and p.name not in registered and p.name not in live:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.add(p.name)
    if removed:
        log.warning("removed %d upload(s) left behind by a stopped API process: %s", len(removed), sorted(removed))
    return sorted(removed)


async def save_upload(chunks: AsyncIterator[bytes], dest: Path, limit: int) -> int:
    """Stream an upload to ``dest``; 413 (and nothing kept) once it passes ``limit`` bytes."""
    size = 0
    with dest.open("wb") as fh:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                fh.close()
                dest.unlink(missing_ok=True)
                raise APIError(413, "payload_too_large", f"upload is larger than the limit of {limit} bytes",
                               {"limit_bytes": limit})
            fh.write(chunk)
    if size == 0:
        dest.unlink(missing_ok=True)
        raise APIError(400, "empty_upload", "the uploaded file is empty")
    return size


def _member_path(name: str) -> PurePosixPath:
    """A member name as a safe relative path, or a 422 naming the member."""
    clean = name.replace("\\", "/")
    path = PurePosixPath(clean)
    if path.is_absolute() or (len(clean) > 1 and clean[1] == ":"):
        raise _bad_member(name, "absolute path")
    if ".." in path.parts:
        raise _bad_member(name, "path climbs out of the archive with '..'")
    return path


def _bad_member(name: str, why: str) -> APIError:
    """422 naming the refused member."""
    return APIError(422, "unsafe_archive", f"archive member {name!r} refused: {why}; nothing was extracted",
                    {"member": name, "problem": why})


class _Budget:
    """Counts files and bytes written while extracting; raises once a limit is passed."""

    def __init__(self, max_files: int, max_bytes: int) -> None:
        self.max_files, self.max_bytes, self.files, self.bytes = max_files, max_bytes, 0, 0

    def add_file(self) -> None:
        """One more file; 413 past the limit."""
        self.files += 1
        if self.files > self.max_files:
            raise APIError(413, "archive_too_many_files", f"archive has more than {self.max_files} files",
                           {"limit_files": self.max_files})

    def copy(self, src: IO[bytes], dest: Path) -> None:
        """Copy a member's bytes, counting them; 413 past the limit."""
        with dest.open("wb") as out:
            while chunk := src.read(CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.max_bytes:
                    raise APIError(413, "archive_too_large",
                                   f"archive expands to more than {self.max_bytes} bytes (decompression bomb?)",
                                   {"limit_bytes": self.max_bytes})
                out.write(chunk)


def _zip_members(zf: zipfile.ZipFile) -> Iterator[tuple[PurePosixPath, zipfile.ZipInfo | None]]:
    """(path, info) for files, (path, None) for directories; links and special files refused."""
    for info in zf.infolist():
        path = _member_path(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver stored permission bits only
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise _bad_member(info.filename, "links and special files are not allowed")
        yield path, (None if info.is_dir() else info)


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    """Check every member first (the central directory is cheap), then extract with the byte budget."""
    with zipfile.ZipFile(archive) as zf:
        members = list(_zip_members(zf))
        for path, info in members:
            target = dest.joinpath(*path.parts)
            if info is None:
                target.mkdir(parents=True, exist_ok=True)
                continue
            budget.add_file()
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src:
                budget.copy(src, target)


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    """One streaming pass (a bomb is cut at the byte limit); any bad member aborts the whole extraction."""
    with tarfile.open(archive, mode="r:*") as tf:
        for m in tf:
            target = dest.joinpath(*_member_path(m.name).parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not m.isfile():
                raise _bad_member(m.name, "links, devices and other special files are not allowed")
            budget.add_file()
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            if src is None:
                raise _bad_member(m.name, "cannot be read")
            with src:
                budget.copy(src, target)


def extract_archive(archive: Path, dest: Path, max_files: int, max_bytes: int) -> Path:
    """Extract a zip or (gzipped) tar into ``dest`` safely; return the dataset root inside it."""
    budget = _Budget(max_files, max_bytes)
    dest.mkdir(parents=True)
    try:
        magic = _magic(archive)
        if magic.startswith(b"PK\x03\x04") or zipfile.is_zipfile(archive):  # a truncated zip is corrupt, not foreign
            _extract_zip(archive, dest, budget)
        elif magic.startswith(b"\x1f\x8b") or _is_tar(archive):
            _extract_tar(archive, dest, budget)
        else:
            raise APIError(415, "unsupported_archive", "upload a .zip or .tar.gz archive of the dataset")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise APIError(422, "corrupt_archive", f"the archive cannot be read: {exc}") from None
    except APIError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if budget.files == 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise APIError(422, "empty_archive", "the archive contains no files")
    return dataset_root(dest)


def _magic(path: Path) -> bytes:
    """The first four bytes (format sniffing)."""
    with path.open("rb") as fh:
        return fh.read(4)


def _is_tar(path: Path) -> bool:
    """tarfile's sniffing, with unreadable files counted as not-a-tar."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def dataset_root(extracted: Path) -> Path:
    """An archive holding one folder (or one .npz) is that dataset; otherwise the extraction folder is."""
    entries = [p for p in extracted.iterdir() if p.name not in ("__MACOSX",) and not p.name.startswith(".")]
    if len(entries) == 1 and (entries[0].is_dir() or entries[0].suffix == ".npz"):
        return entries[0]
    return extracted
