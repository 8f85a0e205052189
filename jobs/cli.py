"""The ``regimen`` command: a thin layer of argument parsing over the modules that do the work.

Exit codes: 0 success; 1 some job failed, or Ray itself mid-run; 2 bad input (specs, arguments, data,
resources) — reported as one line per problem, never a traceback; 3 results that could not be written;
130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import get_args

from rich.console import Console

from jobs import private_network
from jobs.data import default_data_dir
from jobs.execution import LEVERS, UnknownLever, levers_off
from jobs.loading import LoadedExperiment, SpecError, left_out_by_suites, load_experiments
from jobs.plan import BadResources
from jobs.spec import Backend, Precision
from jobs.store import Store, StoreUnavailable, open_store
from jobs.words import count, error_line, first_line

DEFAULT_SPECS = [Path("specs")]


def number(low: float, kind=float, inclusive: bool = True, high: float = math.inf):
    """An argparse type: a finite number of ``kind`` from ``low`` (above it when not ``inclusive``) to ``high``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive) or value > high:
            bound = f"{'>=' if inclusive else '>'} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text}")
        return value

    return parse


def lever_names(text: str) -> frozenset[str]:
    try:
        return levers_off([name.strip() for name in text.split(",") if name.strip()])
    except UnknownLever as error:
        raise argparse.ArgumentTypeError(str(error)) from None


RESOURCE_FLAGS = ("num_cpus", "num_gpus", "gpu_memory_mb")
PLAN_COLUMNS = (
    "experiment",
    "variant",
    "seed",
    "params",
    "epochs",
    "batch",
    "backend",
    "precision",
    "cpus",
    "gpus",
    "job id",
    "stored",
)


def resource_overrides(args) -> dict:
    return {name: getattr(args, name) for name in RESOURCE_FLAGS if getattr(args, name) is not None}


def plan_options(args) -> dict:
    """What ``plan`` and ``run`` share: how specs expand into jobs (``plan.expand``'s keyword arguments,
    which ``RunOptions`` has too)."""
    return {
        "seeds": args.seeds,
        "synthetic": args.synthetic,
        "max_epochs": args.max_epochs,
        "resources": resource_overrides(args),
        "backend": args.backend,
        "precision": args.precision,
    }


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="regimen", description="Run Keras experiments from YAML specs on Ray.")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def specs_argument(sub):
        sub.add_argument("specs", nargs="*", type=Path, help="spec files, suite files or folders (default: specs/)")

    def plan_arguments(sub):
        sub.add_argument("--seeds", type=number(1, int, high=1000), help="train each variant with seeds 0..N-1")
        sub.add_argument("--synthetic", action="store_true", help="generated data with the real shapes")
        sub.add_argument("--max-epochs", type=number(1, int), help="cap every job's epochs (smoke runs)")
        sub.add_argument("--num-cpus", type=number(0, inclusive=False), help="CPUs per job, for every spec")
        sub.add_argument("--num-gpus", type=number(0), help="GPUs per job (fractions share one), for every spec")
        sub.add_argument("--gpu-memory-mb", type=number(256, int), help="cap on each GPU job's GPU memory")
        sub.add_argument(
            "--backend", choices=get_args(Backend), help="Keras backend for every spec (default: each spec's)"
        )
        sub.add_argument(
            "--precision",
            choices=get_args(Precision),
            help="Keras dtype policy for every spec (default: each spec's; mixed_bfloat16 is faster only on "
            "hardware with native bfloat16)",
        )

    specs_argument(commands.add_parser("validate", help="check specs and build every model; train nothing"))
    plan = commands.add_parser("plan", help="list the jobs a run would start")
    specs_argument(plan)
    plan_arguments(plan)
    plan.add_argument("--results", default="results", help="store to compare with (default: ./results)")
    commands.add_parser("schema", help="print the JSON Schema of a spec file")
    data = commands.add_parser("data", help="show where each dataset is found and how to stage it")
    data.add_argument("--data-dir", type=Path, default=None, help="folder with canonical dataset files")

    run = commands.add_parser("run", help="train every job not already stored, on Ray")
    specs_argument(run)
    plan_arguments(run)
    run.add_argument("--results", default="results", help="results folder or fsspec URI (default: ./results)")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    run.add_argument("--data-dir", type=Path, default=None, help="folder with canonical dataset files")
    run.add_argument("--force", action="store_true", help="retrain jobs that already have a result")
    run.add_argument("--require-gpu", action="store_true", help="refuse GPU jobs on a machine with no GPU")
    run.add_argument("--in-process", action="store_true", help="run jobs one by one in this process, without Ray")
    run.add_argument("--no-report", action="store_true", help="do not render the report after the run")
    run.add_argument(
        "--gpus-per-node",
        type=number(1, int),
        help="the most GPUs any node of the Ray cluster has or will have, where its autoscaler does not publish "
        "its node types (KubeRay without autoscaling): 1 lets GPU jobs share worker processes",
    )
    run.add_argument(
        "--off",
        type=lever_names,
        default=frozenset(),
        metavar="LEVER[,LEVER]",
        help=f"performance levers to leave off, to measure them ({', '.join(LEVERS)}; see BENCHMARKS.md)",
    )

    report = commands.add_parser("report", help="render the report from stored results (no training)")
    report.add_argument("--results", default="results", help="results folder or fsspec URI (default: ./results)")
    report.add_argument(
        "--out", default=None, help="report folder or fsspec URI (default: RESULTS/report; ./report for a bucket)"
    )
    return main


def load_or_exit(paths: list[Path], console: Console) -> list[LoadedExperiment]:
    """The experiments of ``paths``; where any spec has errors, they are printed and the command exits 2."""
    loaded, errors = load_or_say(paths, console)
    if errors:
        refuse_specs(errors, console)
    return loaded


def refuse_specs(errors: list[SpecError], console: Console) -> None:
    for error in errors:
        console.print(str(error), markup=False, soft_wrap=True)
    console.print(f"{count(len(errors), 'error')}; nothing was run", style="red")
    raise SystemExit(2)


def load_or_say(paths: list[Path], console: Console) -> tuple[list[LoadedExperiment], list[SpecError]]:
    """(the valid experiments of ``paths``, the errors of the others); the built-in suite where no path is
    given, and a notice for each spec file a suite leaves out."""
    if not paths and not DEFAULT_SPECS[0].exists():
        console.print(
            f"no spec given, and no {DEFAULT_SPECS[0]}/ folder in {Path.cwd()}: run from Regimen's checkout "
            "(the built-in suite) or name spec files, suite files or folders",
            markup=False,
        )
        raise SystemExit(2)
    specs = paths or DEFAULT_SPECS
    loaded, errors = load_experiments(specs)
    if private_network.state() is None:  # else printed before the run restarted in a private network
        for line in left_out_by_suites(specs):
            console.print(f"notice: {line}", markup=False, soft_wrap=True)
    return loaded, errors


def building_backend() -> str:
    """The Keras backend ``validate`` builds models on. A model's layers, shapes and parameter counts are the
    same on every backend, so the one quickest to import and build on: Keras' numpy backend (the whole
    command 5.4 s on 2 cores against 10.8 on TensorFlow, most of it TensorFlow's import; BENCHMARKS.md),
    which needs JAX installed (its ``nn`` module imports it); TensorFlow without it."""
    return "numpy" if importlib.util.find_spec("jax") else "tensorflow"


def cmd_validate(args, console: Console) -> int:
    loaded, errors = load_or_say(args.specs, console)  # the valid ones are built and said ok, then the errors
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = building_backend()
    from jobs.models import build_model
    from jobs.plan import expand

    failed = 0
    for item in loaded:
        experiment = item.experiment
        params, refused = [], 0
        for i, variant in enumerate(experiment.variants):
            try:
                model = build_model(
                    experiment.dataset,
                    variant.layers,
                    experiment.resolved_training(variant),
                    precision=experiment.precision,
                )
            except Exception as error:  # Keras' own refusal, reported like every other spec error
                refused += 1
                console.print(f"{item.file}: variants.{i}: Keras cannot build this model: {error}", markup=False)
                continue
            params.append(f"{variant.name} {model.count_params():,}")
        failed += refused
        if refused:
            continue
        jobs = len(expand([experiment]))
        sizes = f"{count(len(experiment.variants), 'variant')}, {count(jobs, 'job')}"
        console.print(
            f"ok  {experiment.name:<12} {sizes}, params: {', '.join(params)}  ({item.file})",
            markup=False,
        )
    if errors:
        refuse_specs(errors, console)
    if failed:
        console.print(f"{count(failed, 'model')} Keras cannot build", markup=False)
        return 2
    console.print(f"{count(len(loaded), 'experiment')} valid", markup=False)
    return 0


def cmd_plan(args, console: Console) -> int:
    from rich.table import Table

    from jobs.plan import expand
    from jobs.spec import parameter_count

    loaded = load_or_exit(args.specs, console)
    jobs = expand([e.experiment for e in loaded], **plan_options(args))
    store = open_store(args.results)
    table = Table(box=None, pad_edge=False)
    for column in PLAN_COLUMNS:
        table.add_column(column)
    for job in jobs:
        state = store.job(job.id).state()[0]  # an unreadable entry says "corrupt", as run and report see it
        stored = "-" if state == "missing" else state
        epochs = f"{job.training.epochs}" + (f" (of {job.requested_epochs})" if job.epochs_capped else "")
        table.add_row(
            ", ".join(f"{u.experiment}" for u in job.uses),
            ", ".join(sorted({u.variant for u in job.uses})),
            str(job.seed),
            f"{parameter_count(job.dataset, job.layers):,}",
            epochs,
            str(job.training.batch_size),
            job.backend,
            job.precision,
            f"{job.resources.num_cpus:g}",
            f"{job.resources.num_gpus:g}",
            job.id,
            stored,
        )
    console.print(table)
    uses = sum(len(job.uses) for job in jobs)
    console.print(f"{len(jobs)} distinct jobs for {uses} (experiment, variant, seed) uses", markup=False)
    return 0


def cmd_schema(args, console: Console) -> int:
    from jobs.spec import Experiment

    print(json.dumps(Experiment.model_json_schema(), indent=2))
    return 0


def data_dir_usable(given: Path | None, console: Console, synthetic: bool = False) -> bool:
    """Whether the data folder (``--data-dir``, else ``REGIMEN_DATA_DIR``), if any, is a folder this process
    can list; one line saying what it is where not. A run on SYNTHETIC data reads none, so a variable set
    for every shell does not stop it."""
    data_dir = given or default_data_dir()
    if data_dir is None or (synthetic and not given):
        return True
    source = "--data-dir" if given else "REGIMEN_DATA_DIR"
    try:
        os.listdir(data_dir)
        return True
    except NotADirectoryError:
        what = "a file, not a folder"
    except FileNotFoundError:
        what = "no such folder"
    except OSError as error:
        what = f"cannot read it ({error.strerror})"
    console.print(f"{source}: {what}: '{data_dir}'", markup=False)
    return False


def cmd_data(args, console: Console) -> int:
    from jobs.data import KERAS_ORIGIN, DataCorrupt, canonical_files, check_readable, find_local, location
    from jobs.spec import DATASET_NAMES

    if not data_dir_usable(args.data_dir, console):
        return 2
    data_dir = args.data_dir or default_data_dir()
    missing = corrupt = 0
    for name in DATASET_NAMES:
        files, searched = find_local(name, data_dir)
        if files:
            try:
                check_readable(name, files)
            except DataCorrupt as error:
                corrupt += 1
                console.print(f"corrupt  {name:<14} {error}", markup=False)
                continue
            console.print(f"found    {name:<14} {location(files)}", markup=False)
        else:
            missing += 1
            console.print(f"missing  {name:<14} searched: {'; '.join(searched)}", markup=False)
    if missing:
        console.print(
            "\nMissing datasets are downloaded by Keras on first use when this machine has internet. Without it,\n"
            "put the canonical files in one folder and pass --data-dir DIR (or set REGIMEN_DATA_DIR):\n"
            + "\n".join(f"  DIR/{f}" for name in DATASET_NAMES for f in canonical_files(name))
            + f"\nThe files are those Keras downloads ({KERAS_ORIGIN})."
            "\nFor a run without any data: `make demo` (SYNTHETIC data).",
            markup=False,
        )
    return 2 if corrupt else 0


def cmd_run(args, console: Console) -> int:
    from jobs.run import RayFailed, RunOptions, RunRefused, StoreFailed, Terminated, execute

    loaded = load_or_exit(args.specs, console)
    options = RunOptions(
        **plan_options(args),
        address=args.address,
        data_dir=args.data_dir or default_data_dir(),
        force=args.force,
        require_gpu=args.require_gpu,
        executor="local" if args.in_process else "ray",
        off=args.off,
        gpus_per_node=args.gpus_per_node,
        restartable=args.restartable,
    )
    if not data_dir_usable(args.data_dir, console, synthetic=args.synthetic):
        return 2
    submitted = bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))  # set by Ray's job manager
    folder = args.results.removeprefix("file://")  # a local folder: no other protocol
    if submitted and "://" not in folder and not Path(folder).is_absolute():
        console.print(
            f"--results {args.results}: in a job submitted to Ray (`ray job submit`), a relative folder is inside "
            "Ray's temporary copy of the working_dir, which Ray deletes; give an absolute path on a disk the "
            "nodes share, or a bucket (s3://, gs://)",
            markup=False,
        )
        return 2
    try:
        store = open_store(args.results, writable=True)
        summary = execute(loaded, store, options, console)
    except RunRefused as refused:
        for line in refused.lines:
            console.print(line, markup=False, soft_wrap=True)
        return 2
    except StoreFailed as failed:
        console.print(str(failed), markup=False)
        return WRITE_FAILED
    except RayFailed as failed:
        console.print(
            f"{failed}: finished jobs are stored in {args.results}; {how_to_resume(args.force)}", markup=False
        )
        return 1
    except KeyboardInterrupt as stop:
        if threading.current_thread() is threading.main_thread():  # the run is over: another Ctrl-C while it
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # says so and exits would only print a traceback (main)
        report = "" if args.no_report else f"; `regimen report --results {args.results}` updates the report meanwhile"
        how, code = ("terminated (SIGTERM)", 143) if isinstance(stop, Terminated) else ("interrupted", 130)
        again = how_to_resume(args.force)
        console.print(f"\n{how}: finished jobs are stored in {args.results}; {again}{report}", markup=False)
        return code
    kept = f", {len(summary.kept)} failed before and not retried (--force retries)" if summary.kept else ""
    console.print(
        f"{count(summary.planned, 'job')}: {len(summary.finished)} trained, {summary.skipped} already stored, "
        f"{len(summary.failed)} failed{kept}; results in {args.results}",
        markup=False,
    )
    reported = args.no_report or render_report(store, None, console)
    for job, reason in summary.failed + summary.kept:
        console.print(f"failed: {job.label} [{job.id}]: {reason} (log: {store.job(job.id).log_uri})", markup=False)
    return 1 if summary.failed or summary.kept else 0 if reported else WRITE_FAILED


def how_to_resume(force: bool) -> str:
    """What to run after a run stopped mid-way; with --force, "the same command" would train every job again."""
    if force:
        return (
            "jobs being trained again keep their earlier results; run the command again without --force to keep "
            "those and resume the others from their last epoch, or with --force to train every job again"
        )
    return (
        "run the same command again to resume (finished jobs are skipped, unfinished ones resume from their last epoch)"
    )


#: The exit code of a run or report that could not write what it had made (results store, report folder)
WRITE_FAILED = 3


def render_report(store: Store, out: str | None, console: Console) -> bool:
    """The report into ``out``; by default into the store's ``report/`` folder, a bucket's included (so a
    run on a cluster leaves it beside the results). False, after one line saying why, where it cannot be
    written there."""
    from jobs.report import write_report

    target = out if out is not None else store.uri_of("report")
    try:
        written = write_report(store, target)
    except OSError as error:  # a file where the folder belongs, a read-only mount, a full disk
        console.print(
            f"report: cannot write into {target} ({error_line(error)}); the results are stored: "
            f"`regimen report --results {store.uri} --out FOLDER` writes it elsewhere",
            markup=False,
        )
        return False
    console.print(f"report: {written['index.html']}", markup=False)
    return True


def cmd_report(args, console: Console) -> int:
    store = open_store(args.results, must_exist=True)
    if args.out:
        try:
            Store(args.out)
        except (ValueError, ImportError) as error:  # an unknown protocol, or its library not installed
            console.print(f"--out {args.out}: {error_line(error)}", markup=False)
            return 2
    # a bucket's report is read here, not written back into the bucket (which may well be read-only)
    return 0 if render_report(store, args.out or (None if store.local else "report"), console) else WRITE_FAILED


COMMANDS = {
    "validate": cmd_validate,
    "plan": cmd_plan,
    "schema": cmd_schema,
    "data": cmd_data,
    "run": cmd_run,
    "report": cmd_report,
}


#: The libraries fsspec loads for s3:// and gs:// stores: they log every retry with its traceback.
STORAGE_LOGGERS = ("gcsfs", "s3fs", "aiobotocore", "botocore", "fsspec")


class OneLineToStderr(logging.Handler):
    """A log record as one line, its logger's name and the message's first line, without the traceback
    it may carry: the store's own error, printed after, says what failed. Records still reach the
    handlers a user configures (``logging.basicConfig``) whole."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip()
        print(f"{record.name}: {first_line(message)}", file=sys.stderr)


def storage_logs_in_one_line() -> None:
    for name in STORAGE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(handler, OneLineToStderr) for handler in logger.handlers):
            logger.addHandler(OneLineToStderr())


def main(argv: list[str] | None = None) -> int:
    private_network.enter_if_asked()  # done already where the program started through jobs.entry
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    storage_logs_in_one_line()
    args = parser().parse_args(argv)
    args.restartable = argv is None  # the program's own command line, which it may restart with
    # Logs and pipes get whole lines: rich would wrap them at 80 columns
    console = Console(
        highlight=False, emoji=False, soft_wrap=not sys.stdout.isatty(), width=None if sys.stdout.isatty() else 200
    )
    ctrl_c = signal.getsignal(signal.SIGINT)
    try:
        return COMMANDS[args.command](args, console)
    except (StoreUnavailable, BadResources) as error:
        console.print(str(error), markup=False)
        return 2
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        # called in process (argv given: tests, scripts), not as the program about to exit: Ctrl-C as it was
        if argv is not None and ctrl_c is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, ctrl_c)


if __name__ == "__main__":
    sys.exit(main())
