"""Progress: one tqdm bar per long step, drawn only on a terminal, with lines written above it."""
import io

import pytest

import senet_core.progress
from senet_core.progress import progress_bar, say


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_is_drawn_on_a_terminal_only_and_never_when_not_shown():
    for stream, show, drawn in ((Terminal(), True, True), (io.StringIO(), True, False), (Terminal(), False, False)):
        assert list(progress_bar(range(3), show=show, file=stream, desc="steps")) == [0, 1, 2]
        assert ("steps" in stream.getvalue()) is drawn


def test_say_writes_a_whole_line_at_once(capsys):
    say("chapter ok")
    assert capsys.readouterr().out == "chapter ok\n"


@pytest.fixture
def bars(monkeypatch):
    """Every bar the package makes: its options and how far it went."""
    made = []

    class Recorder(senet_core.progress.tqdm):
        def __init__(self, iterable=None, **options):
            super().__init__(iterable, **options)
            self.options, self.steps = options, 0
            made.append(self)

        def __iter__(self):
            for item in super().__iter__():
                self.steps += 1
                yield item

        def update(self, n=1):
            self.steps += n
            return super().update(n)

    monkeypatch.setattr(senet_core.progress, "tqdm", Recorder)
    return made


def test_experiments_show_one_bar_over_their_runs(tmp_path, bars):
    from senet_core.study.experiments import run_experiments

    run_experiments(["table15_se_3x3"], "smoke", seeds=[0], results_dir=tmp_path / "results",
                    runs_dir=tmp_path / "runs", device="cpu")
    runs = [bar for bar in bars if bar.options["desc"] == "smoke runs"]
    assert len(runs) == 1 and runs[0].options["total"] == 3 and runs[0].steps == 3   # three rows, one seed
    assert any(bar.options["desc"].startswith("epoch 1/") for bar in bars)          # each run's own bar


def test_reproduce_shows_one_bar_over_its_chapters(tmp_path, bars, capsys):
    import nbformat
    from senet_core.book.reproduce import reproduce

    (tmp_path / "notebooks").mkdir()
    for name in ("01_a", "02_b"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("x = 1")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    assert reproduce("smoke", root=tmp_path, output="out").ok
    chapters = [bar for bar in bars if bar.options["desc"] == "chapters"]
    assert len(chapters) == 1 and chapters[0].options["total"] == 2 and chapters[0].steps == 2
    out = capsys.readouterr().out
    assert "[1/2] ok" in out and "[2/2] ok" in out


def test_profile_shows_one_bar_over_its_rounds(bars):
    from senet_core.engine.profile import profile_models

    profile_models(["resnet20_cifar", "se_resnet20_cifar"], device="cpu", warmup=1, repeats=2, progress=True)
    rounds = [bar for bar in bars if bar.options["desc"] == "rounds"]
    assert len(rounds) == 1 and rounds[0].steps == 3
