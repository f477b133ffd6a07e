"""Leakage check: no origin and no exact duplicate in two splits; augmented/synthetic images only in train."""

from __future__ import annotations

from dataclasses import dataclass, field

from flare.core.manifest import TRAIN_ONLY_STAGES, Manifest

__all__ = ["LeakageReport", "check_leakage"]


@dataclass
class LeakageReport:
    origins_in_several_splits: dict[str, list[str]] = field(default_factory=dict)
    duplicates_in_several_splits: dict[str, list[str]] = field(default_factory=dict)
    generated_outside_train: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.origins_in_several_splits or self.duplicates_in_several_splits
                    or self.generated_outside_train)

    def lines(self) -> list[str]:
        out = [f"origin {o} is in splits {', '.join(s)}" for o, s in sorted(self.origins_in_several_splits.items())]
        out += [f"identical content {h[:12]}… is in splits {', '.join(s)}"
                for h, s in sorted(self.duplicates_in_several_splits.items())]
        out += [f"generated image {i} is outside train" for i in self.generated_outside_train]
        return out


def check_leakage(manifest: Manifest) -> LeakageReport:
    frame = manifest.frame
    report = LeakageReport()
    for origin, splits in frame.groupby("origin_id")["split"]:
        unique = sorted(set(splits))
        if len(unique) > 1:
            report.origins_in_several_splits[str(origin)] = unique
    hashed = frame[frame["sha256"].fillna("") != ""]
    for digest, splits in hashed.groupby("sha256")["split"]:
        unique = sorted(set(splits))
        if len(unique) > 1:
            report.duplicates_in_several_splits[str(digest)] = unique
    generated = frame[frame["stage"].isin(TRAIN_ONLY_STAGES) & (frame["split"] != "train")]
    report.generated_outside_train = sorted(generated["id"].astype(str))
    return report
