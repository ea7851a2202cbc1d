"""Training: recipes as data, schedules, exact resume, the non-finite loss stop, DDP, the train/eval CLI."""
import json
import math
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from senet_core import create_model
from senet_core.cli import main
from senet_core.engine.recipes import Recipe, list_recipes, recipe
from senet_core.engine.runtime import CHECKPOINT
from senet_core.engine.train import LRSchedule, NonFiniteLossError, TrainConfig, train

REQUIRED_METRICS = {"epoch", "train_loss", "val_top1_err", "val_top5_err", "lr", "epoch_seconds",
                    "images_per_second"}
TIMING = {"epoch_seconds", "eval_seconds", "images_per_second"}


# ---- recipes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_field_is_from_the_paper_or_marked_ours(name):
    r = recipe(name)
    explicit, paper, ours = set(r.explicit), set(r.paper), set(r.ours)
    assert not explicit - paper - ours, f"{name}: fields with no provenance: {explicit - paper - ours}"
    assert not paper & ours, f"{name}: fields marked both paper and ours: {paper & ours}"
    assert not (paper | ours) - explicit, f"{name}: provenance for fields it does not set: {(paper | ours) - explicit}"


def test_paper_imagenet_recipe():
    r = recipe("imagenet")
    assert (r.batch_size, r.lr, r.momentum, r.lr_step_epochs, r.lr_gamma, r.epochs) == (1024, 0.6, 0.9, 30, 0.1, 100)
    assert r.scaled_lr(256) == pytest.approx(0.15)
    assert recipe("imagenet_ablation").se_bias is False


def test_unknown_recipe_and_bad_fields():
    with pytest.raises(ValueError, match="unknown recipe 'imagnet'.*imagenet"):
        recipe("imagnet")
    with pytest.raises(ValueError, match="recipes have no field\\(s\\) colour"):
        recipe("smoke").with_overrides(colour="red")
    with pytest.raises(ValueError, match="schedule='linear'"):
        Recipe(schedule="linear")


# ---- learning-rate schedules -------------------------------------------------------------------------

def test_step_multistep_cosine_and_warmup():
    step = LRSchedule(Recipe(schedule="step", lr_step_epochs=30, epochs=100), 0.6)
    assert [step.lr_at(e) for e in (0, 29.9, 30, 60, 95)] == pytest.approx([0.6, 0.6, 0.06, 0.006, 0.0006])
    multi = LRSchedule(Recipe(schedule="multistep", lr_milestones=(60, 120), lr_gamma=0.2, epochs=200), 0.1)
    assert [multi.lr_at(e) for e in (0, 60, 150)] == pytest.approx([0.1, 0.02, 0.004])
    cos = LRSchedule(Recipe(schedule="cosine", epochs=10), 0.2)
    assert cos.lr_at(0) == pytest.approx(0.2) and cos.lr_at(5) == pytest.approx(0.1) and cos.lr_at(10) == pytest.approx(0)
    warm = LRSchedule(Recipe(schedule="constant", warmup_epochs=2, epochs=5), 0.1)
    assert warm.lr_at(1) == pytest.approx(0.05) and warm.lr_at(3) == pytest.approx(0.1)


def test_plateau_drops_at_most_max_times():
    s = LRSchedule(Recipe(schedule="plateau", plateau_patience=1, max_lr_drops=2, epochs=50), 0.1)
    for loss in [1.0, 0.9, 0.9, 0.9]:      # two epochs without improvement -> one drop
        s.observe(loss)
    assert s.lr_at(4) == pytest.approx(0.01)
    for _ in range(10):
        s.observe(5.0)
    assert s.lr_at(20) == pytest.approx(0.001)     # capped at two drops
    restored = LRSchedule(s.recipe, 0.1)
    restored.load_state_dict(s.state_dict())
    assert restored.lr_at(20) == s.lr_at(20)


# ---- the engine --------------------------------------------------------------------------------------

class Wrapped(nn.Module):
    """A model whose forward crashes, or turns its logits NaN, after a number of calls (training only)."""

    def __init__(self, inner: nn.Module, crash_after: int | None = None, nan_after: int | None = None):
        super().__init__()
        self.inner, self.crash_after, self.nan_after, self.calls = inner, crash_after, nan_after, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.crash_after is not None and self.calls > self.crash_after:
                raise KeyboardInterrupt("simulated crash")
        out = self.inner(x)
        if self.training and self.nan_after is not None and self.calls > self.nan_after:
            out = out * float("nan")
        return out


def fmnist_config(out, epochs=3, **kw) -> TrainConfig:
    r = recipe("fashion_mnist").with_overrides(model="se_resnet20_cifar", epochs=epochs, batch_size=64)
    return TrainConfig(recipe=r, out=str(out), seed=3, limit_train=256, limit_val=128, device="cpu",
                       progress=False, **kw)


def fmnist_model(**kw) -> Wrapped:
    torch.manual_seed(0)
    return Wrapped(create_model("se_resnet20_cifar", num_classes=10, in_chans=1), **kw)


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def test_resume_after_a_crash_repeats_the_uninterrupted_run(tmp_path):
    full = train(fmnist_config(tmp_path / "full"), model=fmnist_model())
    assert len(full) == 3 and REQUIRED_METRICS <= set(full[0])

    with pytest.raises(KeyboardInterrupt):
        train(fmnist_config(tmp_path / "cut"), model=fmnist_model(crash_after=4 + 2))   # 4 steps/epoch
    saved = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert saved["epoch"] == 1
    resumed = train(fmnist_config(tmp_path / "cut", resume=True), model=fmnist_model())

    assert without_timing(resumed) == without_timing(full)
    lines = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert without_timing(lines) == without_timing(full)
    a = torch.load(tmp_path / "full" / CHECKPOINT, weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("clang++")),
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_compiled_channels_last_training_computes_what_eager_training_does(tmp_path):
    # The "compiled" engine of the study: the same run to float rounding, evaluation kept eager.
    eager = train(fmnist_config(tmp_path / "eager", epochs=1))
    compiled = train(fmnist_config(tmp_path / "compiled", epochs=1, compile=True, channels_last=True))
    for key in ("train_loss", "val_loss"):
        assert compiled[0][key] == pytest.approx(eager[0][key], rel=1e-3), key
    saved = json.loads((tmp_path / "compiled" / "config.json").read_text())
    assert saved["compile"] is True and saved["channels_last"] is True


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="loss became nan in epoch 2, step 1.*after epoch 1\\) is kept"):
        train(fmnist_config(tmp_path, epochs=3), model=fmnist_model(nan_after=4))
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_a_finished_run_is_not_overwritten_and_resume_checks_settings(tmp_path):
    train(fmnist_config(tmp_path, epochs=1), model=fmnist_model())
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(fmnist_config(tmp_path, epochs=1), model=fmnist_model())
    other = fmnist_config(tmp_path, epochs=2, resume=True)
    other.seed = 4
    with pytest.raises(ValueError, match="cannot resume.*seed: 3 -> 4"):
        train(other, model=fmnist_model())
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(fmnist_config(tmp_path / "empty", resume=True), model=fmnist_model())


def test_resume_accepts_a_default_se_setting_spelled_another_way(tmp_path):
    r = Recipe(dataset="synthetic", model="se_resnet20_cifar", epochs=1, batch_size=64)
    def run(options, **kwargs):
        return train(TrainConfig(recipe=r, out=str(tmp_path), model_options=options, device="cpu",
                                 limit_train=64, limit_val=64, progress=False, **kwargs))
    first = run({"reduction": 16, "se_bias": False})
    assert run({"excitation": "sigmoid", "se_bias": False}, resume=True) == first
    with pytest.raises(ValueError, match="cannot resume.*model_options"):
        run({"reduction": 8, "se_bias": False}, resume=True)


# ---- paired runs, provenance that stays true, one writer per run folder ------------------------------

def synthetic_run(out, model, epochs=1, **kw) -> TrainConfig:
    r = Recipe(dataset="synthetic", model=model, epochs=epochs, batch_size=32)
    return TrainConfig(recipe=r, out=str(out), device="cpu", limit_train=32, limit_val=32, progress=False,
                       seed=5, **kw)


def test_a_seed_starts_a_network_and_its_baseline_from_the_same_weights_in_every_shared_layer(tmp_path):
    # lr 0 and no weight decay: the checkpoint holds the initial weights.
    states = {}
    for model in ("resnet29_cifar", "se_resnet29_cifar"):
        config = synthetic_run(tmp_path / model, model, lr=0.0)
        config.recipe = config.recipe.with_overrides(weight_decay=0.0)
        train(config)
        states[model] = torch.load(tmp_path / model / CHECKPOINT, weights_only=True)["model"]
    base, se = states["resnet29_cifar"], states["se_resnet29_cifar"]
    shared = [k for k in base if k.endswith("weight")]
    assert len(shared) > 50 and set(shared) <= set(se)
    assert all(torch.equal(base[k], se[k]) for k in shared)
    assert any(".se." in k for k in se)          # the SE blocks are the only difference


def test_reading_a_finished_run_back_never_rewrites_its_provenance(tmp_path):
    first = train(synthetic_run(tmp_path, "resnet20_cifar"))
    config = (tmp_path / "config.json").read_text()
    assert "dirty" in json.loads(config)["provenance"]
    assert train(synthetic_run(tmp_path, "resnet20_cifar", resume=True)) == first
    assert (tmp_path / "config.json").read_text() == config
    train(synthetic_run(tmp_path, "resnet20_cifar", epochs=2, resume=True))
    again = json.loads((tmp_path / "config.json").read_text())
    assert again["provenance"] == json.loads(config)["provenance"]          # the run that started it
    assert [r["from_epoch"] for r in again["resumed"]] == [1]


def test_one_writer_per_run_folder_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    from senet_core.engine.runtime import LOCK, RunLockedError, run_lock
    with run_lock(tmp_path):
        holder = json.loads((tmp_path / LOCK).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(RunLockedError, match=f"being written by another process \\(pid {os.getpid()}"):
            train(synthetic_run(tmp_path, "resnet20_cifar"))
        assert main(["train", "--model", "resnet20_cifar", "--dataset", "synthetic", "--epochs", "1",
                     "--limit-train", "32", "--limit-val", "32", "--device", "cpu", "--out", str(tmp_path),
                     "--quiet"]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / LOCK).exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / LOCK).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname()}))
    train(synthetic_run(tmp_path, "resnet20_cifar"))
    assert f"taking over the lock of process {gone.pid}" in capsys.readouterr().err
    assert not (tmp_path / LOCK).exists()


def test_real_fashion_mnist_learns(tmp_path):
    r = recipe("fashion_mnist").with_overrides(model="resnet20_cifar", epochs=3, batch_size=32)
    # lr 0.1 (the recipe's rate at batch 128) rather than its linear scaling to 0.025: 20 steps an epoch.
    metrics = train(TrainConfig(recipe=r, out=str(tmp_path), seed=0, limit_train=640, limit_val=320,
                                device="cpu", progress=False, lr=0.1))
    losses = [m["train_loss"] for m in metrics]
    assert losses[0] > losses[1] > losses[2] and losses[-1] < losses[0] - 0.5, losses
    assert metrics[-1]["val_top1_err"] < 65, metrics[-1]            # chance is 90 %
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["provenance"]["torch"] == torch.__version__ and config["train_images"] == 640


def test_ddp_with_two_gloo_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "senet_core",
           "train", "--model", "se_resnet20_cifar", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "32",
           "--limit-train", "128", "--limit-val", "64", "--device", "cpu", "--out", str(tmp_path), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["train_images"] == 128 and rows[0]["val_images"] == 64      # all ranks together
    assert json.loads((tmp_path / "config.json").read_text())["provenance"]["world_size"] == 2
    assert math.isfinite(rows[-1]["train_loss"])


# ---- command line ------------------------------------------------------------------------------------

def test_cli_train_then_eval_reproduces_the_last_validation(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "se_resnet20_cifar", "--dataset", "fashion_mnist", "--epochs", "1",
            "--batch-size", "64", "--limit-train", "256", "--limit-val", "128", "--seed", "1", "--device", "cpu",
            "--out", str(out), "--quiet", "--se-stages", "2,3", "--reduction", "8"]
    assert main(args) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert main(["eval", "--checkpoint", str(out), "--limit-val", "128", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["top1_err"] == pytest.approx(last["val_top1_err"])
    assert json.loads((out / "config.json").read_text())["model_options"] == {"reduction": 8, "se_stages": [2, 3]}


@pytest.mark.parametrize("args,message", [
    (["--dataset", "imagenette"], "imagenette"),
    (["--model", "se_resnet5"], "unknown model 'se_resnet5'"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "/nonexistent/cifar"),
    (["--recipe", "imagnet"], "unknown recipe"),
    (["--amp", "fp8"], "invalid choice"),
    (["--epochs", "0"], "must be at least 1"),
    (["--se-position", "middle"], "se_position='middle'"),
])
def test_cli_train_bad_input_is_one_line(tmp_path, args, message):
    cmd = [sys.executable, "-m", "senet_core", "train", "--out", str(tmp_path / "x"), "--device", "cpu",
           "--epochs", "1", "--limit-train", "64", "--limit-val", "64", "--quiet"] + args
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
