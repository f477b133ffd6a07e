"""Leakage check: no origin and no exact duplicate in two splits; augmented/synthetic images only in train.

The manifest is first held to the containment rule (:func:`flare.core.manifest.check_rows`). With ``rehash``
every file is read again and hashed: a file whose bytes differ from its recorded ``sha256`` (overwritten,
swapped, truncated) or that is missing is reported, and duplicates across splits are found by the files'
actual content rather than by what the manifest says. ``rehash=None`` (the default) re-hashes datasets of up to
:data:`REHASH_LIMIT` (20 000) files with a recorded sha256 and trusts the manifest above that.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flare.core.errors import ManifestError
from flare.core.image_shards import image_sha256
from flare.core.manifest import TRAIN_ONLY_STAGES, Manifest, check_rows

__all__ = ["LeakageReport", "check_leakage", "REHASH_LIMIT"]

# Above this many hashed files the check trusts the recorded sha256 unless asked to re-hash.
REHASH_LIMIT = 20_000


@dataclass
class LeakageReport:
    origins_in_several_splits: dict[str, list[str]] = field(default_factory=dict)
    duplicates_in_several_splits: dict[str, list[str]] = field(default_factory=dict)
    generated_outside_train: list[str] = field(default_factory=list)
    content_mismatches: list[str] = field(default_factory=list)  # ids whose file bytes differ from the record
    missing_files: list[str] = field(default_factory=list)  # ids whose file could not be read (rehash only)
    rehashed: bool = False

    @property
    def ok(self) -> bool:
        return not (self.origins_in_several_splits or self.duplicates_in_several_splits
                    or self.generated_outside_train or self.content_mismatches or self.missing_files)

    def lines(self) -> list[str]:
        out = [f"origin {o} is in splits {', '.join(s)}" for o, s in sorted(self.origins_in_several_splits.items())]
        out += [f"identical content {h[:12]}… is in splits {', '.join(s)}"
                for h, s in sorted(self.duplicates_in_several_splits.items())]
        out += [f"generated image {i} is outside train" for i in self.generated_outside_train]
        out += [f"file of {i} differs from its recorded sha256" for i in self.content_mismatches]
        out += [f"file of {i} is missing or unreadable" for i in self.missing_files]
        return out


def _digest(path) -> str | None:
    try:
        return image_sha256(path)  # a file, or an image in a Parquet/WebDataset shard
    except (OSError, ManifestError):
        return None


def check_leakage(manifest: Manifest, *, rehash: bool | None = None, workers: int = 8) -> LeakageReport:
    """Check ``manifest`` (refusing rows that break containment with a one-line ManifestError); see module doc."""
    check_rows(manifest)
    frame = manifest.frame
    report = LeakageReport()
    for origin, splits in frame.groupby("origin_id")["split"]:
        unique = sorted(set(splits))
        if len(unique) > 1:
            report.origins_in_several_splits[str(origin)] = unique
    hashed = frame[frame["sha256"].fillna("") != ""]
    if rehash is None:
        rehash = len(hashed) <= REHASH_LIMIT
    digests = hashed["sha256"].astype(str).tolist()
    if rehash and len(hashed):
        report.rehashed = True
        paths = [manifest.resolve(str(p)) for p in hashed["path"]]
        with ThreadPoolExecutor(workers) as pool:
            actual = list(pool.map(_digest, paths))
        for index, (row_id, recorded, found) in enumerate(zip(hashed["id"].astype(str), digests, actual)):
            if found is None:
                report.missing_files.append(row_id)
            elif found != recorded:
                report.content_mismatches.append(row_id)
                digests[index] = found  # duplicates are judged by the bytes actually there
        report.content_mismatches.sort()
        report.missing_files.sort()
    by_digest: dict[str, set[str]] = {}
    for digest, split in zip(digests, hashed["split"].astype(str)):
        by_digest.setdefault(digest, set()).add(split)
    for digest, splits in by_digest.items():
        if len(splits) > 1:
            report.duplicates_in_several_splits[digest] = sorted(splits)
    generated = frame[frame["stage"].isin(TRAIN_ONLY_STAGES) & (frame["split"] != "train")]
    report.generated_outside_train = sorted(generated["id"].astype(str))
    return report
