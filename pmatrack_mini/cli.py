"""The ``pmatrack-mini`` command line.

    pmatrack-mini synth OUT --sequences N --frames T --offset {none,small,large,dynamic} --seed S [--overwrite]
                        [--background procedural|photo|mixed|photo-heldout]
    pmatrack-mini eval --dataset DIR --results DIR [--gt visible|infrared|both] [--aligned] [--json F] [--plot F]
                       [--layout auto|lasher|lasher-unaligned|muart244|luart]
    pmatrack-mini reference --dataset DIR --kind {static,tir-naive} --out DIR
    pmatrack-mini train --preset cpu-mini --data DIR [DIR ...] --out RUN_DIR [--steps N] [--device cpu|cuda] [--amp]
    pmatrack-mini train --stage 2 --init RUN_DIR/final.pt --data DIR [DIR ...] --out RUN2 [--set align.experts=tre,fme]
    pmatrack-mini track --checkpoint CKPT --dataset DIR --out RESULTS_DIR [--prealign none|first-frame|oracle]
                        [--routing router|soft|tre|fme|dpe] [--tocu/--no-tocu]
    pmatrack-mini profile --preset cpu-mini|paper [--stage 1|2] | --checkpoint CKPT [--routing ...] [--json F]
    pmatrack-mini reproduce --table components|progressive|all --out DIR [--fast]
    pmatrack-mini scorecard [--results DIR] [--json F] [--readme README.md]

Bad input ends with ``error: ...`` on stderr and exit status 2, never with a traceback: argparse's own
usage errors, the package's :class:`PMATrackError` (bad files, arguments, configs, checkpoints) and
``OSError`` (a path that is missing, a folder where a file is expected, no permission) are all reported so,
before any output is written where that can be checked first. Any other exception is a bug and is not hidden.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_args import int_at_least, output_file
from .errors import PMATrackError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are raised as PMATrackError (reported by :func:`main` as ``error: ...``,
    exit 2) instead of printing the usage block and exiting from inside the parser."""

    def error(self, message):
        raise PMATrackError(f"{self.prog}: {message} (see {self.prog} --help)")


def _output_folder(path: str) -> None:
    if Path(path).exists() and not Path(path).is_dir():
        raise PMATrackError(f"{path}: exists and is not a folder")


def _size(text: str) -> tuple:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x256, got {text!r}") from None
    return (w, h)


def cmd_synth(args) -> None:
    from .data.synth import CHALLENGES, SynthConfig
    from .data.synth_sets import generate_dataset, generate_samples

    if args.preset == "samples":
        paths = generate_samples(args.out, progress=not args.quiet, overwrite=args.overwrite)
    else:
        challenges = None
        if args.challenges is not None:
            challenges = tuple(c for c in args.challenges.split(",") if c) if args.challenges != "none" else ()
        cfg = SynthConfig(frames=args.frames, offset=args.offset, rgb_size=args.rgb_size, tir_size=args.tir_size,
                          challenges=challenges, failure=args.failure, background=args.background)
        paths = generate_dataset(args.out, args.sequences, cfg, seed=args.seed, overwrite=args.overwrite,
                                 progress=not args.quiet)
    print(f"wrote {len(paths)} sequence(s) to {args.out} (challenges available: {', '.join(CHALLENGES)})")


def cmd_eval(args) -> None:
    from .evaluation.evaluate import evaluate, format_report, plot_curves, save_report

    output_file(args.json)
    output_file(args.plot)
    rep = evaluate(args.dataset, args.results, gt=args.gt, list_file=args.list, aligned=args.aligned,
                   layout=args.layout)
    print(format_report(rep))
    if args.json:
        save_report(rep, args.json)
        print(f"report: {args.json}")
    if args.plot:
        plot_curves({Path(args.results).name: rep}, args.plot)
        print(f"plot: {args.plot}")


def cmd_reference(args) -> None:
    from .data.dataset import load_dataset
    from .evaluation.reference import reference_prediction
    from .utils import write_boxes

    _output_folder(args.out)
    # every prediction is computed before the first file is written: a bad sequence leaves no partial set
    preds = {seq.name: reference_prediction(seq, args.kind) for seq in load_dataset(args.dataset, list_file=args.list)}
    for name, boxes in preds.items():
        write_boxes(Path(args.out) / f"{name}.txt", boxes)
    print(f"wrote {args.kind} predictions to {args.out}")


def build_parser() -> argparse.ArgumentParser:
    from .data.synth import MIN_FRAMES, OFFSET_LEVELS

    p = ArgumentParser(prog="pmatrack-mini", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate synthetic unaligned RGBT sequences (LasHeR layout)")
    s.add_argument("out")
    s.add_argument("--sequences", type=int_at_least(1), default=4)
    s.add_argument("--frames", type=int_at_least(MIN_FRAMES), default=100)
    s.add_argument("--offset", choices=list(OFFSET_LEVELS), default="small",
                   help="none | small (LasHeR-Unaligned regime) | large (MUART244 regime) | dynamic (large rig on a "
                        "moving platform: first-frame pre-alignment falls behind)")
    s.add_argument("--seed", type=int_at_least(0), default=0)
    s.add_argument("--rgb-size", type=_size, default=(320, 256), help="W x H, default 320x256")
    s.add_argument("--tir-size", type=_size, default=(160, 128), help="W x H, default 160x128")
    s.add_argument("--challenges", default=None,
                   help="comma list of low_illumination,thermal_crossover,occlusion,fast_motion; "
                        "'none' for none; default: each with probability 1/2")
    s.add_argument("--failure", action="store_true",
                   help="add a stretch where the target vanishes in one modality (RGB blackout or TIR), tagged "
                        "modality_failure")
    s.add_argument("--background", choices=["procedural", "photo", "mixed", "photo-heldout"], default="procedural",
                   help="procedural textures (default), photographs (scikit-image's bundled ones) for the "
                        "backgrounds and targets, mixed: each sequence one or the other, or photo-heldout: the "
                        "photographs that photo and mixed never use (for test sets)")
    s.add_argument("--preset", choices=["samples"], default=None, help="'samples' regenerates data_samples/")
    s.add_argument("--overwrite", action="store_true",
                   help="replace a set that OUT holds (made with other parameters, or of unknown origin); "
                        "without it such a folder is refused")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    e = sub.add_parser("eval", help="PR / NPR / SR with the LasHeR toolkit's conventions")
    e.add_argument("--dataset", required=True)
    e.add_argument("--results", required=True,
                   help="folder of <sequence>.txt (or <Tracker>_<sequence>.txt) files, one format for all: x,y,w,h "
                        "rows (commas or spaces) or 8-value corner rows x1 y1 x2 y1 x2 y2 x1 y2")
    e.add_argument("--layout", choices=["auto", "lasher", "lasher-unaligned", "muart244", "luart"], default="auto",
                   help="dataset folder layout (default: detected): LasHeR <seq>/visible.txt, LasHeR-Unaligned "
                        "annos/<seq>.txt, MUART244 annos/visible/, LUART <seq>/NotAlign/")
    e.add_argument("--gt", choices=["visible", "infrared", "both"], default="visible",
                   help="ground truth to score against: visible (default; RGB pixels, as the predictions), "
                        "infrared (TIR pixels: predictions are mapped through each sequence's homography.txt; "
                        "a sequence whose two GT files differ and that has none is refused), or both "
                        "(RGBT234's MPR/MSR)")
    e.add_argument("--aligned", action="store_true",
                   help="the two cameras are registered (RGBT234): compare with infrared.txt without mapping")
    e.add_argument("--list", default=None, help="sequence-list file (default: DATASET/list.txt if present)")
    e.add_argument("--json", default=None)
    e.add_argument("--plot", default=None, help="PNG with the precision and success plots")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("reference", help="write a model-free reference prediction (static, tir-naive)")
    r.add_argument("--dataset", required=True)
    r.add_argument("--kind", choices=["static", "tir-naive"], required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--list", default=None)
    r.set_defaults(func=cmd_reference)

    from .experiments.reproduce import add_cli as add_reproduce
    from .profiling.profile_cli import add_cli as add_profile
    from .tracking.track_run import add_cli as add_track
    from .training.train import add_cli as add_train

    add_train(sub)
    add_track(sub)
    add_profile(sub)
    add_reproduce(sub)
    from .tracking.calibrate import add_cli as add_calibrate
    add_calibrate(sub)
    from .models.official import add_cli as add_convert
    add_convert(sub)
    from .experiments.scorecard import add_cli as add_scorecard
    add_scorecard(sub)
    return p


def _os_message(exc: OSError) -> str:
    """``x/y: No such file or directory`` rather than ``[Errno 2] No such file or directory: 'x/y'``."""
    if isinstance(exc, FileExistsError) and exc.filename:   # from mkdir: a file is where a folder must go
        return f"{exc.filename}: exists and is not a folder"
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)


def main(argv=None) -> int:
    """Run one subcommand; returns the exit status (0 done, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except PMATrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {_os_message(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
