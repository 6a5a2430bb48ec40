"""Content hashes of files: fetch checks a video against its params sha256, training fingerprints
its input crops so a checkpoint resumes only on the same data."""
import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file's bytes, read in blocks (videos can be gigabytes)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
