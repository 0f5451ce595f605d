"""TrainingRun without the CLI: checkpoints, resume, the model it writes."""
import os

import numpy as np
import pytest

from nncli.errors import ConfigError
from nncli.model_io import load_model
from nncli.run import TrainingRun

IRIS = os.path.join(os.path.dirname(__file__), "..", "data", "iris.csv")
CONFIG = {"layers": [8], "epochs": 12, "seed": 3, "threads": 1, "val_split": 0.2, "lr": 0.01}


def _phi(path):
    return load_model(path).network.phi.tobytes()


def test_a_run_writes_the_model_log_and_summary(tmp_path):
    out = str(tmp_path / "m.npz")
    summary = TrainingRun(IRIS, CONFIG, output=out, loss_log=str(tmp_path / "log.csv")).execute()
    assert summary["epochs"] == 12 and summary["model"] == out
    meta = load_model(out).meta
    assert meta["config"]["task"] == "classification" and meta["train_rows"] + meta["val_rows"] == 150
    assert len(open(tmp_path / "log.csv").read().splitlines()) == 13


def test_resume_from_a_checkpoint_is_bit_for_bit(tmp_path):
    full = str(tmp_path / "full.npz")
    TrainingRun(IRIS, CONFIG, output=full).execute()

    def stop_at_8(record, trainer):
        if record.epoch == 8:
            raise KeyboardInterrupt

    ck = str(tmp_path / "ck.npz")
    run = TrainingRun(IRIS, CONFIG, output=str(tmp_path / "part.npz"), checkpoint=ck, checkpoint_every=3)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 8 of 12 epochs.*--resume"):
        run.execute([stop_at_8])
    assert not os.path.exists(tmp_path / "part.npz")
    assert load_model(ck).meta["checkpoint"]["epoch"] == 6
    resumed = str(tmp_path / "resumed.npz")
    TrainingRun(IRIS, {}, output=resumed, resume=ck).execute()
    assert _phi(resumed) == _phi(full)
    assert load_model(resumed).meta["metrics"] == load_model(full).meta["metrics"]


def test_resume_refuses_given_options_that_differ(tmp_path):
    ck = str(tmp_path / "ck.npz")
    TrainingRun(IRIS, CONFIG, output=str(tmp_path / "a.npz"), checkpoint=ck).execute()
    run = TrainingRun(IRIS, {**CONFIG, "epochs": 40}, output=str(tmp_path / "b.npz"), resume=ck,
                      given={"epochs", "seed"})
    with pytest.raises(ConfigError, match="these differ from it: --epochs$"):
        run.prepare()


def test_resume_refuses_other_data(tmp_path):
    ck = str(tmp_path / "ck.npz")
    TrainingRun(IRIS, CONFIG, output=str(tmp_path / "a.npz"), checkpoint=ck).execute()
    other = tmp_path / "other.csv"
    other.write_bytes(open(IRIS, "rb").read() + b"5.0,3.0,1.5,0.2,setosa\n")
    with pytest.raises(ConfigError, match="not the data the checkpoint"):
        TrainingRun(str(other), {}, output=str(tmp_path / "b.npz"), resume=ck).prepare()


def test_callbacks_see_every_epoch_and_no_log_without_a_path(tmp_path):
    seen = []
    TrainingRun(IRIS, CONFIG, output=str(tmp_path / "m.npz")).execute(
        [lambda record, trainer: seen.append(record.epoch)])
    assert seen == list(range(1, 13))
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").network.phi.shape, (4 * 8 + 8 + 8 * 3 + 3,))
