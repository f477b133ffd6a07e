"""``flare data``: simulate, ingest, make the LR protocol, check for leakage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from flare.cli._common import (
    ConfigOption, SeedOption, SetOption, console, err_console, given, handle_errors, resolve_config,
)
from flare.core.errors import FlareError
from flare.core.manifest import Manifest

app = typer.Typer(help="Get data in: simulate a survey, ingest images, build LR/HR pairs, check splits.",
                  no_args_is_help=True)



@app.command("simulate")
@handle_errors
def simulate(out: Annotated[Path, typer.Argument(help="Dataset folder to write.")],
             config: ConfigOption = None, set_: SetOption = None, seed: SeedOption = None,
             per_class: Annotated[Optional[int], typer.Option(help="Objects per class.")] = None) -> None:
    """Simulate a small survey with GalSim: HR truth + LR observation per object, already split."""
    from flare.data.simulate import simulate_survey

    cfg = resolve_config(config, set_, {"seed": seed, "simulate.objects_per_class": per_class})
    manifest = simulate_survey(out, cfg.simulate, seed=cfg.seed, split=cfg.data.split)
    _print_counts(manifest)
    console.print(f"simulated {len(manifest)} objects into {out}")


@app.command("ingest")
@handle_errors
def ingest(source: Annotated[Path, typer.Argument(help="Folder of class folders, or CSV/Parquet (path,label[,origin]).")],
           out: Annotated[Path, typer.Argument(help="Dataset folder to write.")],
           config: ConfigOption = None, set_: SetOption = None, seed: SeedOption = None,
           taxonomy: Annotated[Optional[str], typer.Option(help="Preset (gz1, spacenet, sim) or YAML file.")] = None,
           stretch: Annotated[Optional[str], typer.Option(help="FITS stretch: linear, asinh, log, sqrt.")] = None,
           interval: Annotated[Optional[str], typer.Option(help="FITS interval: percentile, zscale, minmax.")] = None,
           hdu: Annotated[Optional[str], typer.Option(help="FITS HDU index or EXTNAME.")] = None,
           storage: Annotated[Optional[str], typer.Option(help="auto, convert or reference.")] = None,
           origin_from: Annotated[Optional[str], typer.Option(help="Origin when the table gives none: path (class folder + file name) or stem (the file name is the object id, e.g. GZ1 objids).")] = None) -> None:
    """Read, validate and split images; bad files go to quarantine.csv with the reason."""
    from flare.data.ingest import ingest as run_ingest

    hdu_value = int(hdu) if hdu is not None and hdu.lstrip("-").isdigit() else hdu
    cfg = resolve_config(config, set_, {"seed": seed, "data.stretch": stretch, "data.interval": interval,
                                        "data.fits_hdu": hdu_value, "data.storage": storage,
                                        "data.taxonomy": taxonomy, "data.origin_from": origin_from})
    result = run_ingest(source, out, cfg.data, seed=cfg.seed, taxonomy=cfg.data.taxonomy)
    _print_counts(result.manifest)
    summary = result.summary()
    console.print(f"ingested {summary['images']} images; quarantined {summary['quarantined']} "
                  f"(see {out / 'quarantine.csv'}); exact duplicates {summary['exact_duplicates']}; "
                  f"label conflicts {summary['label_conflicts']}")


@app.command("make-lr")
@handle_errors
def make_lr(dataset: Annotated[Path, typer.Argument(help="An ingested dataset folder.")],
            out: Annotated[Path, typer.Argument(help="Dataset folder to write (hr/ truth, lr/ inputs).")],
            crop: Annotated[Optional[int], typer.Option(help="Centre crop side (HR truth), px.")] = None,
            factor: Annotated[Optional[int], typer.Option(help="Binning factor.")] = None,
            psf_fwhm: Annotated[Optional[float], typer.Option(help="Extra PSF FWHM, HR px.")] = None,
            read_noise: Annotated[Optional[float], typer.Option(help="Read noise sigma, display units.")] = None,
            gain: Annotated[Optional[float], typer.Option(help="Gain for Poisson noise (display units → counts).")] = None,
            max_per_class: Annotated[Optional[int], typer.Option(help="Keep at most N per class and split.")] = None,
            seed: Annotated[Optional[int], typer.Option(help="Noise and subset seed.")] = None) -> None:
    """Build the LR protocol: HR = centre crop, LR = crop binned ×factor through PSF + noise."""
    from flare.core.degrade import DegradeConfig
    from flare.data.protocol import make_lr_protocol

    degradation = DegradeConfig(**given(factor=factor, psf_fwhm_px=psf_fwhm, read_noise=read_noise, gain=gain))
    manifest = make_lr_protocol(dataset, out, degradation=degradation,
                                **given(crop_px=crop, seed=seed, max_per_class=max_per_class))
    _print_counts(manifest)
    console.print(f"wrote {len(manifest)} LR/HR pairs into {out}")


@app.command("check-leakage")
@handle_errors
def check_leakage(dataset: Annotated[Path, typer.Argument(help="Dataset folder (or manifest file).")],
                  rehash: Annotated[Optional[bool], typer.Option(
                      "--rehash/--no-rehash",
                      help="Re-hash every file: report files whose bytes differ from their recorded sha256 and "
                           "duplicates across splits by content. Default: on for datasets of up to 20 000 "
                           "hashed files, off above.")] = None) -> None:
    """Exit non-zero if an origin or an exact duplicate sits in two splits, a generated image is outside train, or
    (re-hashing) a file's bytes differ from its recorded sha256; a row whose id, label or path leaves the
    dataset is refused."""
    from flare.core.dataset import Dataset
    from flare.data.leakage import check_leakage as run_check

    report = run_check(Dataset.open(dataset).manifest, rehash=rehash)
    if report.ok:
        console.print(f"no leakage in {dataset}")
        return
    for line in report.lines():
        err_console.print(f"leak: {line}", highlight=False)
    raise typer.Exit(code=1)


@app.command("merge-manifests")
@handle_errors
def merge_manifests(
        out: Annotated[Path, typer.Argument(help="Dataset folder to write.")],
        inputs: Annotated[list[Path], typer.Argument(help="Dataset folders written by `--shard i/N` runs.")],
        files: Annotated[Optional[str], typer.Option(help="link (hard links, else copies), copy or reference.")] = None,
) -> None:
    """Join sharded outputs into one dataset; fails on duplicate ids whose rows differ."""
    from flare.core.shard import merge_manifests as run_merge

    if files not in (None, "link", "copy", "reference"):
        raise FlareError(f"--files: {files!r} is not one of link, copy, reference")
    manifest = run_merge(inputs, out, **given(files=files))
    console.print(f"merged {len(inputs)} datasets into {out}: {len(manifest)} rows")


@app.command("show")
@handle_errors
def show(dataset: Annotated[Path, typer.Argument(help="Dataset folder.")]) -> None:
    """Counts per stage, split and class."""
    _print_counts(Manifest.read(dataset))


def _print_counts(manifest: Manifest) -> None:
    frame = manifest.frame
    if not len(frame):
        console.print("(empty)")
        return
    counts = frame.groupby(["stage", "label", "split"]).size().unstack(fill_value=0)
    table = Table("stage", "label", *[str(c) for c in counts.columns])
    for (stage, label), row in counts.iterrows():
        table.add_row(str(stage), str(label), *[str(int(v)) for v in row])
    console.print(table)
