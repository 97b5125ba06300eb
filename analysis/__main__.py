"""Paper tables, figures and a summary from a study's MLflow runs.

  python -m analysis tables STUDY [--format markdown|latex|csv] [--out DIR] [--tracking-uri URI]
  python -m analysis figures STUDY [--out DIR]
  python -m analysis summary STUDY
  python -m analysis report STUDY --out PAGE.md

STUDY is a study name (`python -m study.run --list`), or `paper_table4` for the comparison table built from
the runs of paper_table1 and paper_table2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.bootstrap import RESAMPLES
from analysis.render import FORMATS, write
from analysis.runs import RunsError
from analysis.summary import study_summary
from analysis.table_layouts import TABLE4, names
from analysis.tables import study_tables
from study.cli_checks import number_type, output_folder_problem


def parser() -> argparse.ArgumentParser:
    first, rest = __doc__.split("\n", 1)
    p = argparse.ArgumentParser(prog="python -m analysis", description=first, epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("study", choices=names(), metavar="STUDY", help=f"one of: {', '.join(names())}")
    common.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///./mlflow.db)")
    common.add_argument("--launch", help="one launch (name or parent run id), or 'all' (default: the launches "
                        "with the newest launch's profile)")
    tables = commands.add_parser("tables", parents=[common], help="the paper tables: ours / paper / difference")
    tables.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default: markdown)")
    tables.add_argument("--out", help="write one file per table into this folder (default: print)")
    tables.add_argument("--bootstrap", type=number_type(int, 0), default=RESAMPLES,
                        help=f"bootstrap resamples for the EER intervals, 0 = none (default: {RESAMPLES})")
    tables.add_argument("--top", type=number_type(int, 1), default=10,
                        help="best trials listed for an Optuna study (default: 10)")
    figures = commands.add_parser("figures", parents=[common], help="figures as PNG and PDF, logged to MLflow")
    figures.add_argument("--out", default=None, help="folder for the figures (default: ./figures/STUDY)")
    figures.add_argument("--runs", help="comma-separated trial or run ids for the DET curves (default: per "
                         "framework, the best run at margin 0 and the best with a margin)")
    figures.add_argument("--no-log", action="store_true", help="do not attach the figures to the MLflow parent run")
    commands.add_parser("summary", parents=[common], help="one screen: trials, best configuration, compute spent")
    report = commands.add_parser("report", parents=[common], help="a results page: how the runs were made, the "
                                 "summary, the tables and the figures (PNGs in a folder beside the page)")
    report.add_argument("--out", required=True, help="the page to write, e.g. docs/results/speechocean762.md")
    report.add_argument("--bootstrap", type=number_type(int, 0), default=RESAMPLES,
                        help=f"bootstrap resamples for intervals and paired differences (default: {RESAMPLES})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "report":
        page = Path(args.out)
        problem = (f"--out {page}: a results page is a Markdown file (.md)" if page.suffix != ".md" else
                   f"--out {page} is a folder" if page.is_dir() else
                   output_folder_problem(page.parent, "--out's folder"))
    else:
        problem = output_folder_problem(args.out, "--out") if getattr(args, "out", None) else None
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.command == "tables":
            tables = study_tables(args.study, args.tracking_uri, args.launch, args.bootstrap, args.top)
            for path in write(tables, args.format, args.out, args.study):
                print(path)
        elif args.command == "figures":
            if args.study == TABLE4:
                raise RunsError(f"{TABLE4} is a table, not a study: draw the figures of paper_table1 or paper_table2")
            from analysis.figures import study_figures  # heavy: matplotlib, only for this command

            chosen = [s.strip() for s in (args.runs or "").split(",") if s.strip()]
            paths, notes = study_figures(args.study, args.tracking_uri, args.out or f"figures/{args.study}",
                                         args.launch, chosen, log=not args.no_log)
            for note in notes:
                print(note, file=sys.stderr)
            for path in paths:
                print(path)
        elif args.command == "report":
            if args.study == TABLE4:
                raise RunsError(f"{TABLE4} is a table, not a study: report paper_table1 or paper_table2")
            from analysis.report import study_report  # heavy: matplotlib, only for this command

            for path in study_report(args.study, args.tracking_uri, args.out, args.launch, args.bootstrap,
                                     sys.argv[1:] if argv is None else argv):
                print(path)
        else:
            if args.study == TABLE4:
                raise RunsError(f"{TABLE4} is a table, not a study: summarise paper_table1 or paper_table2")
            print(study_summary(args.study, args.tracking_uri, args.launch), end="")
    except (RunsError, OSError) as error:  # OSError: a file it cannot write, named
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
