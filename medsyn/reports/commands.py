"""`medsyn report`: the CLI over :func:`medsyn.reports.build_report`."""

from __future__ import annotations

from pathlib import Path

import typer

from medsyn.errors import MedsynError


def register(app) -> None:
    @app.command("report")
    def report(
        inputs: list[Path] | None = typer.Argument(
            None, help="results.json files, eval folders or run folders (a run folder brings "
            "all its evaluations, one row per evaluated epoch). Default: everything under "
            "--runs-root."),
        out: Path = typer.Option(Path("reports"), "--out", "-o", file_okay=False,
                                 help="Folder for index.html, its assets/, summary.csv and "
                                 "summary.md."),
        runs_root: Path = typer.Option(Path("runs"), "--runs-root",
                                       help="Where to look when no inputs are given."),
        select_by: str | None = typer.Option(
            None, "--select-by", help="Metric that picks each run's best epoch (default: FID "
            "for generators, PSNR-Y for super-resolution), e.g. fid, kid, intra_fid, "
            "tstr_acc; a comma list is an order of fallbacks (tstr_acc,fid: TSTR accuracy where "
            "the run has it, else FID)."),
        best_only: bool = typer.Option(False, "--best-only",
                                       help="Summary tables show only each run's selected "
                                       "epoch."),
        title: str | None = typer.Option(None, "--title", help="Page title."),
        baselines: Path | None = typer.Option(None, "--baselines", dir_okay=False,
                                              help="Another baselines TOML file (same format "
                                              "as medsyn/reports/baselines.toml)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace the index.html, "
                                       "summary.csv, summary.md and assets/ already in --out "
                                       "(without it they are never overwritten)."),
        strict: bool = typer.Option(False, "--strict",
                                    help="Exit with status 1 if any input had a problem (the "
                                    "report is still written)."),
    ):
        """One HTML report of evaluated runs beside published baselines (offline, printable)."""
        from medsyn.reports import build_report

        result = build_report(inputs, out, runs_root=runs_root, select_by=select_by,
                              best_only=best_only, title=title, baselines_path=baselines,
                              overwrite=overwrite)
        for problem in result.problems:
            typer.echo(f"medsyn: warning: {problem}", err=True)
        typer.echo(f"wrote {result.index_html} ({result.n_runs} run(s), "
                   f"{result.n_evaluations} evaluation(s)), {result.summary_csv}, "
                   f"{result.summary_md}")
        if strict and result.problems:
            raise MedsynError(f"{len(result.problems)} input problem(s) (see warnings above); "
                              "the report was written anyway")
