"""`python -m training digit|sequence|evaluate|export`: reproducible training of the shipped models.

Examples:
    python -m training digit --epochs 8 --seed 1
    python -m training sequence --epochs 16 --seed 1
    python -m training sequence --epochs 8 --seed 2 --init ocrd/models/lines.keras  # stage 2
    python -m training digit --epochs 3 --seed 2 --init ocrd/models/digits.keras     # stage 2
    python -m training calibrate             # field-confidence calibration for --out
    python -m training evaluate              # figures for the models in --out
    python -m training export --out /tmp/savedmodels
    python -m training export --litert       # ocrd/models/*.tflite, after new Keras weights
    python -m training ensemble --members runs/a/lines.keras runs/b/lines.keras  # one file
    python -m training corrections --db sqlite:///ocrd.db --out /tmp/corrections
    python -m training digit --epochs 2 --init ocrd/models/digits.keras --extra /tmp/corrections
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from training.readers import REPO_ROOT, default_data_dir

DEFAULT_MODELS_DIR = REPO_ROOT / "ocrd" / "models"


def _log(message: str) -> None:
    print(message, flush=True)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        choices=["digit", "sequence", "calibrate", "evaluate", "export", "corrections", "ensemble"],
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"data sets folder (default: $OCRD_DATA_DIR or {default_data_dir()})",
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--seed", type=int, default=1, help="seed for data, augmentation, init")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="models folder (default: ocrd/models); for export: SavedModel folder",
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="continue from this digits.keras / lines.keras at a lower learning rate",
    )
    parser.add_argument(
        "--clean-init",
        action="store_true",
        help="sequence with --init: the init never trained on the ORAND-CAR-A validation tenth "
        "(lines@2.0 and later), so that tenth scores it and its epochs",
    )
    parser.add_argument(
        "--grow",
        action="store_true",
        help="sequence with --init: continue in the residual (larger) model, which starts "
        "out reading exactly as the --init model does",
    )
    parser.add_argument(
        "--form-pages",
        type=int,
        default=0,
        help="digit: also train on the crops the pipeline cuts from this many generated form "
        "pages (written with training digits only)",
    )
    parser.add_argument(
        "--mix",
        choices=["mnist", "real", "real-light", "real-styles", "cheque", "cheque-marks"],
        default="mnist",
        help="data mix; 'real' adds other writers: for sequence, mostly real ORAND-CAR-A lines "
        "and strings composed from their digits; for digit, ORAND-CAR-A digit boxes and style "
        "variants (training/styles.py)",
    )
    parser.add_argument(
        "--litert",
        action="store_true",
        help="export: convert the shipped Keras models to LiteRT (.tflite) beside them and "
        "record them in the manifest (the CPU runtime)",
    )
    parser.add_argument(
        "--model-version",
        default="1.0",
        help="version recorded in the manifest (a continued --init stage bumps it, e.g. 1.1)",
    )
    parser.add_argument(
        "--extra",
        type=Path,
        default=None,
        help="digit / sequence: also train on the reviewed fields exported to this folder by "
        "`corrections`",
    )
    parser.add_argument(
        "--average",
        type=int,
        default=0,
        help="digit / sequence: also average the weights of the last N epochs (kept if that "
        "beats every single epoch on validation)",
    )
    parser.add_argument("--db", default=None, help="corrections: the ocrd database URL")
    parser.add_argument(
        "--members",
        type=Path,
        nargs="+",
        default=None,
        help="ensemble: the trained lines.keras files (each beside its manifest) joined into "
        "the shipped line model, first one first",
    )
    args = parser.parse_args(argv)
    _quiet_tensorflow()

    if args.command in ("digit", "sequence"):
        checkpoint = os.environ.get("OCRD_TRAIN_CHECKPOINT")
        common = {
            "log": _log,
            "checkpoint": Path(checkpoint) if checkpoint else None,
            "version": args.model_version,
            "init": args.init,
            "data_dir": args.data,
            "out_dir": args.out or DEFAULT_MODELS_DIR,
            "seed": args.seed,
            "extra": args.extra,
        }
        if args.command == "digit":
            from training.digits import train_digits

            entry = train_digits(
                epochs=args.epochs or 8,
                form_pages=args.form_pages,
                mix=args.mix,
                average=args.average,
                **common,
            )
        else:
            from training.sequence import train_sequence

            entry = train_sequence(
                epochs=args.epochs or 16,
                grow=args.grow,
                mix=args.mix,
                clean_init=args.clean_init,
                average=args.average,
                **common,
            )
        _log(json.dumps(entry["metrics"], indent=1))
    elif args.command == "calibrate":
        from training.calibrate import calibrate

        calibrate(args.out or DEFAULT_MODELS_DIR, args.data, seed=args.seed, log=_log)
    elif args.command == "ensemble":
        from training.ensemble import ship_ensemble

        if not args.members or len(args.members) < 2:
            parser.error("ensemble needs --members with two or more lines.keras files")
        ship_ensemble(args.members, args.out or DEFAULT_MODELS_DIR, args.model_version, _log)
    elif args.command == "corrections":
        from training.corrections import export_corrections

        if args.db is None or args.out is None:
            parser.error("corrections needs --db (the ocrd database) and --out (a folder)")
        export_corrections(args.db, args.out, log=_log)
    elif args.command == "evaluate":
        from training.evaluate import evaluate_shipped

        _log(
            json.dumps(
                evaluate_shipped(args.out or DEFAULT_MODELS_DIR, args.data, args.seed), indent=1
            )
        )
    else:
        from training.export import export_litert, export_saved_models

        if args.litert:
            for path in export_litert(args.out or DEFAULT_MODELS_DIR):
                _log(f"converted {path}")
            return 0
        if args.out is None:
            parser.error("export needs --out (a folder for the SavedModels)")
        for path in export_saved_models(DEFAULT_MODELS_DIR, args.out):
            _log(f"exported {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
