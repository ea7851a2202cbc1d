"""What each ``senet`` subcommand does with its parsed arguments; each returns the exit status."""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
from pathlib import Path

import pandas as pd

from ..book.chapters import results_dir
from ..book.reproduce import reproduce
from ..complexity import complexity, complexity_report
from ..engine.data import fetch_dataset
from ..engine.detection import evaluate_detection, train_detection
from ..engine.evaluate import evaluate_run
from ..engine.profile import profile_models
from ..engine.recipes import default_recipe, list_recipes, recipe
from ..engine.runtime import distributed_from_env
from ..engine.train import TrainConfig, train
from ..models import create_model, list_models, model_entry
from ..study.comparisons import conclusions, experiment_table
from ..study.experiments import discard_stale, run_experiments, run_study, run_until_decided
from ..study.pilot import PROFILES as PILOT_PROFILES, run_pilot
from ..study.report import conclusion, headline, markdown_table, reproduction_report, summary
from ..study.results import load_records, provenance_label
from ..study.spec import list_experiments, profile
from .conventions import UsageError, notices_to_stderr, print_json
from .flags import amp_of, se_options


def train_command(args: argparse.Namespace) -> int:
    name = args.recipe or default_recipe(args.dataset or "fashion_mnist")
    base = recipe(name)
    chosen = base.with_overrides(
        dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
        weight_decay=args.weight_decay, momentum=args.momentum, label_smoothing=args.label_smoothing,
        schedule=args.schedule, cutout=args.cutout)
    is_main = distributed_from_env().is_main          # under torchrun only rank 0 speaks
    with notices_to_stderr(args):
        if chosen.batch_size != chosen.lr_batch and args.lr is None and not args.quiet and is_main:
            print(f"learning rate {chosen.scaled_lr():g}: the recipe's {base.lr:g} at batch {base.lr_batch}, "
                  f"scaled linearly to batch {chosen.batch_size}")
        config = TrainConfig(
            recipe=chosen, out=args.out, data_dir=args.data_dir, model_options=se_options(args), lr=args.lr,
            amp=amp_of(args), channels_last=args.channels_last, compile=args.compile, seed=args.seed,
            limit_train=args.limit_train, limit_val=args.limit_val, device=args.device, resume=args.resume,
            workers=args.workers, download=args.download, progress=not args.quiet)
        metrics = train(config)
    if args.json:
        if is_main:
            print_json(metrics[-1] if metrics else None)
    elif metrics and not args.quiet and is_main:
        last = metrics[-1]
        print(f"done: {len(metrics)} epochs, val top-1 err {last['val_top1_err']:.2f} %, top-5 err "
              f"{last['val_top5_err']:.2f} %; metrics in {args.out}/metrics.jsonl")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    if args.model and args.checkpoint is None and args.pretrained is None:
        # A registered model alone has random weights, whose error says nothing.
        raise UsageError(f"--model {args.model} is evaluated with released weights: add --pretrained imagenet "
                         f"(or a path or URL), or give --checkpoint RUN for a training run instead")
    with notices_to_stderr(args):
        result = evaluate_run(model=args.model, checkpoint=args.checkpoint, pretrained=args.pretrained,
                              dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size,
                              crop_size=args.crop_size, resize=args.resize, device=args.device, amp=amp_of(args),
                              limit_val=args.limit_val, workers=args.workers, download=args.download,
                              progress=not args.json)
    if args.json:
        print_json(result)
    else:
        print(f"{result['model']} on {result['dataset']} ({result['images']} images, crop {result['crop_size']}): "
              f"top-1 err {result['top1_err']:.2f} %, top-5 err {result['top5_err']:.2f} %")
    return 0


def complexity_command(args: argparse.Namespace) -> int:
    if args.model:
        entry = model_entry(args.model)
        size = args.input_size or entry.input_size[1]
        c = complexity(create_model(args.model), (entry.input_size[0], size, size))
        if args.json:
            print_json({"model": args.model, "input_size": size, **c.as_dict()})
            return 0
        print(f"{args.model} at {size}x{size}: {c.params:,} parameters ({c.params_m:.2f} M), "
              f"{c.macs:,} multiply-accumulates ({c.gflops:.3f} GFLOPs); SE: {c.se_params:,} parameters, "
              f"{c.se_macs:,} MACs")
        return 0
    report = complexity_report(progress=not args.json)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report.render(markdown=True) + "\n")
    if args.json:
        print_json([cell.as_dict() for cell in report.cells])
    else:
        print(report.render())
    if args.markdown:
        with notices_to_stderr(args):
            print(f"\nwrote {args.markdown}")
    return 1 if report.unexplained_misses else 0


def models_command(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, pretrained=args.pretrained)
    if not names:
        which = "with released weights " if args.pretrained else ""
        raise UsageError(f"no model {which}matches {args.pattern!r}: the pattern is shell-style, such as 'se_*' "
                         f"(`senet models{' --pretrained' if args.pretrained else ''}` lists them all)")
    if args.json:
        released = set(list_models(pretrained=True))
        print_json([_entry_dict(model_entry(name), name in released) for name in names])
        return 0
    for name in names:
        e = model_entry(name)
        kind = f"SE version of {e.baseline}" if e.is_se else "baseline"
        print(f"{name:32s} {kind:40s} {e.paper}")
    return 0


def _entry_dict(entry, released_weights: bool) -> dict:
    """A registry entry's metadata, without its factory, and whether it has released weights."""
    return {"name": entry.name, "baseline": entry.baseline, "is_se": entry.is_se, "input_size": entry.input_size,
            "min_size": entry.min_size, "se_stages": entry.se_stages, "se_positions": entry.se_positions,
            "paper": entry.paper, "released_weights": released_weights}


def recipes_command(args: argparse.Namespace) -> int:
    if args.json:
        print_json([dataclasses.asdict(recipe(name)) for name in list_recipes()])
        return 0
    for name in list_recipes():
        print(f"{name:20s} {recipe(name).summary}")
    return 0


def train_detection_command(args: argparse.Namespace) -> int:
    with notices_to_stderr(args):
        result = train_detection(
            args.model, args.data_dir, args.out, train_split=args.train_split, val_split=args.val_split,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed,
            limit_train=args.limit_train or args.limit, limit_val=args.limit_val or args.limit,
            pretrained_backbone=args.pretrained_backbone, fpn=not args.no_fpn,
            min_size=args.min_size, max_size=args.max_size, amp=amp_of(args), num_workers=args.workers,
            eval_every=args.eval_every)
    print_json(result)          # the final record is JSON with or without --json
    return 0


def eval_detection_command(args: argparse.Namespace) -> int:
    with notices_to_stderr(args):
        result = evaluate_detection(args.checkpoint, args.data_dir, split=args.val_split,
                                    batch_size=args.batch_size, device=args.device, limit_val=args.limit_val,
                                    amp=amp_of(args), num_workers=args.workers, out=args.out)
    if args.json:
        print_json(result)
    else:
        print(f"{args.val_split}: {result['num_images']} images, AP {result['ap']:.1f}, AP@0.5 {result['ap50']:.1f}")
    return 0


def experiments_command(args: argparse.Namespace) -> int:
    names = [n for n in list_experiments() if not args.only or fnmatch.fnmatch(n, args.only)
             or args.only in n]
    if not names:
        raise UsageError(f"no experiment matches {args.only!r}; experiments: {', '.join(list_experiments())}")
    if args.list:
        if args.json:
            print_json(names)
        else:
            print("\n".join(names))
        return 0
    with notices_to_stderr(args):
        _run_experiments(names, args)
    if args.json:
        print_json({name: _rows(experiment_table(name, args.results_dir, args.profile)) for name in names})
        return 0
    for name in names:
        if not args.quiet:
            print(f"\n{name}")
            print(experiment_table(name, args.results_dir, args.profile).to_string())
            print(provenance_label(load_records(args.results_dir, args.profile, name)) + "\n")
    return 0


def _run_experiments(names: list[str], args: argparse.Namespace) -> None:
    """Train what ``experiments`` asks for: its discards first, then its rule for the seeds."""
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
    running = dict(results_dir=args.results_dir, runs_dir=args.runs_dir, device=args.device, data_dir=args.data_dir,
                 progress=not args.quiet, engine_name=args.engine, jobs=args.jobs, download=args.download)
    if args.study:
        if args.seeds is not None or args.epochs is not None:
            raise UsageError("--study chooses the seeds itself and uses the profile's epochs: "
                             "leave out --seeds and --epochs")
        try:
            run_study(names, args.profile, **running)
        except ValueError as e:
            raise UsageError(str(e)) from None
    elif args.until_halfwidth is not None:
        if args.seeds is not None or args.epochs is not None:
            raise UsageError("--until-halfwidth chooses the seeds itself and uses the profile's epochs: "
                             "leave out --seeds and --epochs (--min-seeds sets where it starts)")
        run_until_decided(names, args.profile, args.until_halfwidth, args.max_seeds, min_seeds=args.min_seeds,
                          **running)
    else:
        run_experiments(names, args.profile, seeds=args.seeds, epochs=args.epochs, **running)


def pilot_command(args: argparse.Namespace) -> int:
    profiles = args.profiles or PILOT_PROFILES
    with notices_to_stderr(args):
        if args.download:
            # The pilot reads its data from the usual places (no data_dir): fetch it there first.
            for dataset in sorted({profile(p).dataset for p in profiles}):
                fetch_dataset(dataset)
        result = run_pilot(profiles, args.results_dir, args.runs_dir, args.device, progress=not args.quiet)
    if args.json:
        print_json(result)
        return 0
    for regime in result["regimes"]:
        print(json.dumps({k: v for k, v in regime.items() if k not in ("gates", "top1_err")}))
    return 0


def report_command(args: argparse.Namespace) -> int:
    where = Path(args.results_dir) if args.results_dir else results_dir(args.profile)
    report = reproduction_report(where, args.profile)
    if args.headline:
        table = headline(report, conclusions(where, args.profile))
        text, data = markdown_table(table), _rows(table)
    else:
        counts, closing = summary(report), conclusion(report)
        text = "\n\n".join([markdown_table(counts), markdown_table(report), closing])
        data = {"summary": _rows(counts), "claims": _rows(report), "conclusion": closing}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.json:
        print_json(data)
    elif not args.out:
        print(text)
    return 0


def _rows(table: pd.DataFrame) -> list[dict]:
    """A table's rows as JSON objects; its row labels, if it has any, under the index's name ("row"
    when it has none). Missing values become null."""
    if not isinstance(table.index, pd.RangeIndex):
        table = table.rename_axis(table.index.name or "row").reset_index()
    return json.loads(table.to_json(orient="records", force_ascii=False))


def reproduce_command(args: argparse.Namespace) -> int:
    with notices_to_stderr(args):
        result = reproduce(profile=args.profile, only=args.only, jobs=args.jobs, output=args.out,
                           force=args.force)
    if args.json:
        print_json({**dataclasses.asdict(result), "ok": result.ok})
    else:
        print(result.render())
    return 0 if result.ok else 1


def profile_command(args: argparse.Namespace) -> int:
    models = args.models or ["resnet50", "se_resnet50"]
    baseline = args.baseline if args.baseline is not None else models[0]
    size = (args.in_chans, args.input_size, args.input_size) if args.input_size else None
    report = profile_models(models, baseline=baseline or None, mode=args.mode, batch_size=args.batch_size,
                            input_size=size, device=args.device, amp=amp_of(args),
                            channels_last=args.channels_last, compile=args.compile, warmup=args.warmup,
                            repeats=args.repeats, threads=args.threads, progress=not args.json)
    if args.json:
        print_json(report.as_dict(), indent=1)
    else:
        print(report.render())
    return 0
