"""The ``senet`` command line (also ``python -m senet_core``).

Every subcommand ends a wrong argument with a one-line error and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """A bad argument: reported on one line, exit status 2."""


# The recipe a dataset trains with when no --recipe is given.
DEFAULT_RECIPES = {"imagenet": "imagenet", "places365": "imagenet", "cifar10": "cifar_resnet",
                   "cifar100": "cifar_resnet", "fashion_mnist": "fashion_mnist", "synthetic": "smoke"}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def stage_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of stage numbers") from None


def _add_se_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SE options (Section 6 ablations; SE models only)")
    g.add_argument("--reduction", type=positive_int, help="reduction ratio r (Table 10)")
    g.add_argument("--squeeze", help="avg | max | none (NoSqueeze, Table 16)")
    g.add_argument("--excitation", help="sigmoid | tanh | relu (Table 12)")
    g.add_argument("--se-position", help="standard | pre | post | identity | 3x3 (Tables 14-15)")
    g.add_argument("--se-stages", type=stage_list, help="stages with SE blocks, e.g. 2,3 (Table 13; stem = 1)")
    g.add_argument("--se-bias", choices=("on", "off"), help="FC biases in the excitation")


def _se_options(args: argparse.Namespace) -> dict:
    options = {"reduction": args.reduction, "squeeze": args.squeeze, "excitation": args.excitation,
               "se_position": args.se_position, "se_stages": args.se_stages,
               "se_bias": None if args.se_bias is None else args.se_bias == "on"}
    return {k: v for k, v in options.items() if v is not None}


def _amp(value: str) -> str | None:
    return None if value == "none" else value


def _cmd_train(args: argparse.Namespace) -> int:
    from .engine.recipes import recipe as get_recipe
    from .engine.train import TrainConfig, train

    name = args.recipe or DEFAULT_RECIPES.get(args.dataset or "fashion_mnist", "smoke")
    base = get_recipe(name)
    chosen = base.with_overrides(
        dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
        weight_decay=args.weight_decay, momentum=args.momentum, label_smoothing=args.label_smoothing,
        schedule=args.schedule, cutout=args.cutout)
    is_main = os.environ.get("RANK", "0") == "0"      # under torchrun only rank 0 speaks
    if chosen.batch_size != chosen.lr_batch and args.lr is None and not args.quiet and is_main:
        print(f"learning rate {chosen.scaled_lr():g}: the recipe's {base.lr:g} at batch {base.lr_batch}, "
              f"scaled linearly to batch {chosen.batch_size}")
    config = TrainConfig(
        recipe=chosen, out=args.out, data_dir=args.data_dir, model_options=_se_options(args), lr=args.lr,
        amp=_amp(args.amp), channels_last=args.channels_last, compile=args.compile, seed=args.seed,
        limit_train=args.limit_train, limit_val=args.limit_val, device=args.device, resume=args.resume,
        workers=args.workers, download=args.download, progress=not args.quiet)
    metrics = train(config)
    if metrics and not args.quiet and is_main:
        last = metrics[-1]
        print(f"done: {len(metrics)} epochs, val top-1 err {last['val_top1_err']:.2f} %, top-5 err "
              f"{last['val_top5_err']:.2f} %; metrics in {args.out}/metrics.jsonl")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate_run

    result = evaluate_run(model=args.model, checkpoint=args.checkpoint, pretrained=args.pretrained,
                          dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size,
                          crop_size=args.crop_size, resize=args.resize, device=args.device, amp=_amp(args.amp),
                          limit_val=args.limit_val, workers=args.workers, download=args.download)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {result['dataset']} ({result['images']} images, crop {result['crop_size']}): "
              f"top-1 err {result['top1_err']:.2f} %, top-5 err {result['top5_err']:.2f} %")
    return 0


def _cmd_complexity(args: argparse.Namespace) -> int:
    from .complexity import complexity, complexity_report
    from .models import create_model, model_entry

    if args.model:
        entry = model_entry(args.model)
        size = args.input_size or entry.input_size[1]
        c = complexity(create_model(args.model), (entry.input_size[0], size, size))
        print(f"{args.model} at {size}x{size}: {c.params:,} parameters ({c.params_m:.2f} M), "
              f"{c.macs:,} multiply-accumulates ({c.gflops:.3f} GFLOPs); SE: {c.se_params:,} parameters, "
              f"{c.se_macs:,} MACs")
        return 0
    report = complexity_report()
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report.render(markdown=True) + "\n")
    print(report.render())
    if args.markdown:
        print(f"\nwrote {args.markdown}")
    return 1 if report.unexplained_misses else 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models, model_entry

    for name in list_models(args.pattern):
        e = model_entry(name)
        kind = f"SE version of {e.baseline}" if e.is_se else "baseline"
        print(f"{name:32s} {kind:40s} {e.paper}")
    return 0


def _cmd_train_detection(args: argparse.Namespace) -> int:
    from .engine.detection import train_detection

    result = train_detection(
        args.model, args.data_dir, args.out, train_split=args.train_split, val_split=args.val_split,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed,
        limit=args.limit, pretrained_backbone=args.pretrained_backbone, fpn=not args.no_fpn,
        min_size=args.min_size, max_size=args.max_size, amp=_amp(args.amp), num_workers=args.workers,
        eval_every=args.eval_every)
    print(json.dumps(result, default=str))
    return 0


def _cmd_eval_detection(args: argparse.Namespace) -> int:
    from .engine.detection import evaluate_detection

    result = evaluate_detection(args.checkpoint, args.data_dir, split=args.split, batch_size=args.batch_size,
                                device=args.device, limit=args.limit, amp=_amp(args.amp),
                                num_workers=args.workers, out=args.out)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split}: {result['num_images']} images, AP {result['ap']:.1f}, AP@0.5 {result['ap50']:.1f}")
    return 0


def _cmd_experiments(args: argparse.Namespace) -> int:
    from .study.experiments import (discard_stale, experiment_table, list_experiments, run_experiments, run_study,
                              run_until_decided)
    from .study.results import load_records, provenance_label

    names = [n for n in list_experiments() if not args.only or fnmatch.fnmatch(n, args.only)
             or args.only in n]
    if not names:
        raise UsageError(f"no experiment matches {args.only!r}; experiments: {', '.join(list_experiments())}")
    if args.list:
        print("\n".join(names))
        return 0
    if args.discard_stale is not None:
        for name in names:
            try:
                removed = discard_stale(name, args.profile, args.discard_stale, args.results_dir)
            except ValueError as e:
                raise UsageError(str(e)) from None
            if removed and not args.quiet:
                print(f"{name}: {len(removed)} records of another protocol discarded (listed in the ledger)")
    if args.study and args.until_halfwidth is not None:
        raise UsageError("--study and --until-halfwidth are two rules for the seeds: give one")
    if args.study:
        if args.seeds is not None or args.epochs is not None:
            raise UsageError("--study chooses the seeds itself and uses the profile's epochs: "
                             "leave out --seeds and --epochs")
        try:
            run_study(names, args.profile, results_dir=args.results_dir, runs_dir=args.runs_dir,
                      device=args.device, data_dir=args.data_dir, progress=not args.quiet,
                      engine_name=args.engine, jobs=args.jobs, download=args.download)
        except ValueError as e:
            raise UsageError(str(e)) from None
    elif args.until_halfwidth is not None:
        if args.seeds is not None or args.epochs is not None:
            raise UsageError("--until-halfwidth chooses the seeds itself and uses the profile's epochs: "
                             "leave out --seeds and --epochs (--min-seeds sets where it starts)")
        run_until_decided(names, args.profile, args.until_halfwidth, args.max_seeds, results_dir=args.results_dir,
                          runs_dir=args.runs_dir, device=args.device, data_dir=args.data_dir,
                          progress=not args.quiet, engine_name=args.engine, jobs=args.jobs,
                          min_seeds=args.min_seeds, download=args.download)
    else:
        run_experiments(names, args.profile, results_dir=args.results_dir, runs_dir=args.runs_dir,
                        device=args.device, seeds=args.seeds, epochs=args.epochs, data_dir=args.data_dir,
                        progress=not args.quiet, engine_name=args.engine, jobs=args.jobs, download=args.download)
    for name in names:
        if not args.quiet:
            print(f"\n{name}")
            print(experiment_table(name, args.results_dir, args.profile).to_string())
            print(provenance_label(load_records(args.results_dir, args.profile, name)) + "\n")
    return 0


def _cmd_pilot(args: argparse.Namespace) -> int:
    from .study.pilot import PROFILES, run_pilot

    profiles = tuple(p for p in args.profiles.split(",") if p) if args.profiles else PROFILES
    if args.download:
        # The pilot reads its data from the usual places (no data_dir): fetch it there first.
        from .engine.data import fetch_dataset
        from .study.experiments import profile

        for dataset in sorted({profile(p).dataset for p in profiles}):
            fetch_dataset(dataset)
    summary = run_pilot(profiles, args.results_dir, args.runs_dir, args.device, progress=not args.quiet)
    for regime in summary["regimes"]:
        print(json.dumps({k: v for k, v in regime.items() if k not in ("gates", "top1_err")}))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .book.chapters import results_dir
    from .study.experiments import conclusions
    from .study.report import conclusion, headline, markdown_table, reproduction_report, summary

    where = Path(args.results_dir) if args.results_dir else results_dir(args.profile)
    report = reproduction_report(where, args.profile)
    if args.headline:
        text = markdown_table(headline(report, conclusions(where, args.profile)))
    else:
        text = "\n\n".join([markdown_table(summary(report)), markdown_table(report), conclusion(report)])
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .book.reproduce import reproduce

    summary = reproduce(profile=args.profile, only=args.only, jobs=args.jobs, output=args.output,
                        force=args.force)
    print(summary.render())
    return 0 if summary.ok else 1


def _cmd_profile(args: argparse.Namespace) -> int:
    from .engine.profile import profile_models

    models = args.models or ["resnet50", "se_resnet50"]
    baseline = args.baseline if args.baseline is not None else models[0]
    size = (args.in_chans, args.input_size, args.input_size) if args.input_size else None
    report = profile_models(models, baseline=baseline or None, mode=args.mode, batch_size=args.batch_size,
                            input_size=size, device=args.device, amp=_amp(args.amp),
                            channels_last=args.channels_last, compile=args.compile, warmup=args.warmup,
                            repeats=args.repeats, threads=args.threads)
    print(json.dumps(report.as_dict(), indent=1) if args.json else report.render())
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from .engine.recipes import list_recipes, recipe

    for name in list_recipes():
        r = recipe(name)
        print(f"{name:20s} {r.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="senet", description="Squeeze-and-Excitation Networks: models, complexity, training, the book.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("complexity", help="the paper's complexity columns beside ours (Section 4)",
                       description="Print Section 4's numbers and the params/GFLOPs columns of Tables 2, 3, "
                                   "10, 13, 15 and 16, paper beside ours; or one model's complexity.")
    p.add_argument("--model", help="count one registered model instead of printing the report")
    p.add_argument("--input-size", type=int, help="with --model: input height = width (default: the model's)")
    p.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown to PATH")
    p.set_defaults(func=_cmd_complexity)

    p = sub.add_parser("train", help="train a model (one process, or under torchrun)",
                       description="Train a network with one of the paper's recipes. Run under `torchrun "
                                   "--nproc_per_node=N -m senet_core train ...` for DDP.")
    p.add_argument("--recipe", help="a recipe from `senet recipes` (default: the dataset's)")
    p.add_argument("--model", help="a registered model (default: the recipe's)")
    p.add_argument("--dataset", help="imagenet | cifar10 | cifar100 | fashion_mnist | places365 | synthetic")
    p.add_argument("--data-dir", help="where the dataset is (or is downloaded to)")
    p.add_argument("--out", required=True, help="run folder: metrics.jsonl, checkpoint.pt, config.json")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int, help="global batch (split over processes)")
    p.add_argument("--lr", type=positive_float, help="learning rate as is (default: the recipe's, scaled to the batch)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--schedule", help="step | multistep | cosine | plateau | constant")
    p.add_argument("--cutout", type=int, help="Cutout side in pixels (CIFAR)")
    _add_se_options(p)
    g = p.add_argument_group("running")
    g.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none", help="mixed precision")
    g.add_argument("--channels-last", action="store_true")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--limit-train", type=positive_int, help="use the first N training images")
    g.add_argument("--limit-val", type=positive_int, help="use the first N validation images")
    g.add_argument("--device", default="auto", help="cpu | cuda | auto")
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--workers", type=int, default=2, help="data-loading processes (ImageNet-style datasets)")
    g.add_argument("--download", action="store_true", help="download the dataset if it is missing")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="single-crop top-1/top-5 error of a checkpoint or released weights",
                       description="Evaluate a training run's checkpoint (--checkpoint) or released weights "
                                   "(--model with --pretrained) on a dataset's validation split.")
    p.add_argument("--checkpoint", help="a run's checkpoint.pt (or its run folder)")
    p.add_argument("--model", help="a registered model, with --pretrained")
    p.add_argument("--pretrained", help="released weights: a path, a URL, or 'imagenet'")
    p.add_argument("--dataset", help="default: the checkpoint's, or imagenet")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--crop-size", type=positive_int, help="centre crop (default: the model's input size)")
    p.add_argument("--resize", type=positive_int, help="shorter side before cropping (default: crop x 8/7)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none")
    p.add_argument("--limit-val", type=positive_int)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--download", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("train-detection", help="train Faster R-CNN with one of our trunks on COCO (Table 7)",
                       description="Train Faster R-CNN (FPN) with a ResNet-family trunk on COCO-format data, "
                                   "Detectron's recipe by default (senet_core.engine.detection.TABLE7_RECIPE).")
    p.add_argument("--model", required=True, help="trunk: resnet50, se_resnet50, resnet101, se_resnet101, ...")
    p.add_argument("--data-dir", required=True, help="COCO root: annotations/instances_SPLIT.json + SPLIT/")
    p.add_argument("--out", required=True)
    p.add_argument("--train-split", default="train2017")
    p.add_argument("--val-split", default="val2017")
    p.add_argument("--epochs", type=positive_int, default=25)
    p.add_argument("--batch-size", type=positive_int, default=2)
    p.add_argument("--lr", type=positive_float, help="default: Detectron's 0.02 at batch 16, scaled linearly")
    p.add_argument("--pretrained-backbone", help="ImageNet weights for the trunk (path, URL or 'imagenet')")
    p.add_argument("--no-fpn", action="store_true", help="single-level detector on conv5 (not a paper setting)")
    p.add_argument("--min-size", type=positive_int, default=800)
    p.add_argument("--max-size", type=positive_int, default=1333)
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N epochs (0: at the end only)")
    p.add_argument("--limit", type=positive_int, help="use the first N images of each split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=_cmd_train_detection)

    p = sub.add_parser("eval-detection", help="COCO AP and AP@0.5 of a detector checkpoint (Table 7)",
                       description="Evaluate a detector checkpoint with the COCO API.")
    p.add_argument("--checkpoint", required=True, help="a detector.pt written by train-detection")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--split", default="val2017")
    p.add_argument("--batch-size", type=positive_int, default=2)
    p.add_argument("--limit", type=positive_int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", help="also write the detections as COCO JSON into this folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_eval_detection)

    p = sub.add_parser("experiments", help="run the reduced-scale reproductions of the paper's experiments",
                       description="Train every row of the paper's experiments (Tables 2, 4-5, 10-16 as "
                                   "miniatures, senet_core/experiments.yaml) for every seed of a profile; "
                                   "resumable; writes one JSON record per run.")
    p.add_argument("--profile", default="cpu",
                   help="a profile of senet_core/experiments.yaml: smoke, cpu, gpu, or a pilot_* regime")
    p.add_argument("--only", help="experiments whose name matches (shell pattern or substring)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--runs-dir", default="runs/experiments", help="run folders with checkpoints (not committed)")
    p.add_argument("--seeds", type=lambda t: [int(s) for s in t.split(",")], help="e.g. 0,1,2 (default: the profile's)")
    p.add_argument("--epochs", type=positive_int, help="default: the profile's")
    p.add_argument("--engine", help="how runs execute: an engine of senet_core/experiments.yaml (eager, "
                                     "channels_last, compiled; default: the profile's); not part of a run's "
                                     "identity, named in every record")
    p.add_argument("--discard-stale", metavar="REASON",
                   help="first remove the records whose run is no longer their row's run under the profile "
                        "(the protocol or regime changed), each listed in the ledger as discarded with REASON")
    p.add_argument("--study", action="store_true",
                   help="the profile's study rule for the seeds (experiments.yaml: study): each comparison "
                        "gets its seeds, then more (up to the rule's max) while it is inconclusive as its table "
                        "decides it, after Holm's correction")
    p.add_argument("--until-halfwidth", type=positive_float, metavar="H",
                   help="add seeds to each comparison until its 95 %% interval is narrower than +/- H points")
    p.add_argument("--max-seeds", type=positive_int, default=20, help="with --until-halfwidth (default 20)")
    p.add_argument("--min-seeds", type=positive_int, help="with --until-halfwidth: seeds every row starts "
                                                          "with (default: the profile's)")
    p.add_argument("--jobs", type=positive_int,
                   help="runs trained at a time, each in its own process with cores/jobs threads "
                        "(default: the profile's)")
    p.add_argument("--data-dir")
    p.add_argument("--download", action="store_true",
                   help="download the dataset if it is missing (into --data-dir, default $SENET_DATA or "
                        "~/.cache/senet_core/data)")
    p.add_argument("--device", default="auto")
    p.add_argument("--list", action="store_true", help="list the experiments and stop")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_experiments)

    p = sub.add_parser("pilot", help="the training-regime pilot: SE vs no SE and the gates, per regime",
                       description="Train SE vs no SE on the ablation network (3 paired seeds) in each "
                                   "candidate regime (the pilot_* profiles), resumable, and write "
                                   "results/pilot/summary.json: paired gains, gate statistics, cost.")
    p.add_argument("--profiles", help="comma-separated pilot profiles (default: all four)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--runs-dir", default="runs/experiments", help="run folders with checkpoints (not committed)")
    p.add_argument("--download", action="store_true",
                   help="download the dataset if it is missing (into $SENET_DATA or ~/.cache/senet_core/data)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_pilot)

    p = sub.add_parser("report", help="the paper's claims beside our checks of them (Markdown)",
                       description="The reproduction report as Markdown: the summary, every claim beside "
                                   "our check of it, and the closing synthesis; --headline prints only the "
                                   "book's landing-page table.")
    p.add_argument("--profile", default="cpu", choices=("cpu", "gpu"),
                   help="whose training records (cpu: the committed study)")
    p.add_argument("--results-dir", help="default: the profile's (the committed results/ for cpu)")
    p.add_argument("--headline", action="store_true", help="only the landing page's table")
    p.add_argument("--output", help="write the Markdown to this file instead of printing it")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("reproduce", help="execute every chapter notebook with papermill",
                       description="Execute the book's notebooks with a profile's parameters, skipping "
                                   "up-to-date outputs; non-zero exit if any chapter fails.")
    p.add_argument("--profile", default="smoke", choices=("smoke", "cpu", "gpu"))
    p.add_argument("--only", help="notebooks whose name matches (shell pattern or substring)")
    p.add_argument("--jobs", type=positive_int, default=1, help="notebooks run at once")
    p.add_argument("--output", default="_build/executed", help="folder for the executed notebooks")
    p.add_argument("--force", action="store_true", help="re-run up-to-date notebooks too")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("profile", help="paired latency / training-step timings, as ratios to a baseline (Section 4)",
                       description="Time models paired in one process (round-robin, warm-up, median with "
                                   "spread) and report ratios to a baseline: Section 4's CPU (batch 1) and "
                                   "GPU (batch 256, forward+backward) timings on your hardware.")
    p.add_argument("models", nargs="*", help="registered models (default: resnet50 se_resnet50)")
    p.add_argument("--baseline", help="ratios relative to this model (default: the first; '' for none)")
    p.add_argument("--mode", choices=("latency", "train"), default="latency",
                   help="latency: forward in eval mode; train: forward+backward+SGD step")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--input-size", type=positive_int, help="height = width (default: each model's)")
    p.add_argument("--in-chans", type=positive_int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=positive_int, default=20)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("recipes", help="list the training recipes", description="List the training recipes.")
    p.set_defaults(func=_cmd_recipes)

    p = sub.add_parser("models", help="list the registered models", description="List the registered models.")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'se_*'")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"senet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from .engine.train import NonFiniteLossError

        if not isinstance(err, NonFiniteLossError):
            raise
        print(f"senet {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"senet {args.command}: interrupted", file=sys.stderr)
        return 130
