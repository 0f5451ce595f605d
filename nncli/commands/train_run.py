"""The body of `nncli train`: read, build, train with progress/log/checkpoints, save."""
import os

from nncli import data as D
from nncli import pipeline
from nncli.commands.options import default_output, echo_err, read_kwargs
from nncli.errors import ConfigError, DivergenceError, ModelFileError
from nncli.model_io import check_writable, json_safe, load_model, save_model
from nncli.progress import LossLogWriter, Progress


def run(opts, config, given=()):
    """Train per the CLI options `opts`; `config` is the part stored in the model; `given`
    names the training options typed on the command line."""
    output = opts["output"] or default_output(opts["data"], ".npz")
    loss_log_path = opts["loss_log"] or _beside(output, ".loss.csv")
    state = None
    if opts["resume"]:
        typed = config
        config, state = _resume_config(opts["resume"])
        # A resumed run is the checkpoint's run: an option that would change it is refused
        # rather than silently ignored.
        changed = sorted(n for n in given if json_safe(typed[n]) != config.get(n))
        if changed:
            raise ConfigError("--resume continues the checkpoint's run with its own options; "
                              "these differ from it: "
                              + ", ".join("--" + n.replace("_", "-") for n in changed))
    table = D.read_csv(opts["data"], **read_kwargs(config if opts["resume"] else opts))
    if state is not None and state["data_sha256"] != table.sha256:
        raise ConfigError(f"{opts['data']} is not the data the checkpoint {opts['resume']} was "
                          "trained on (its sha256 differs)")
    data = pipeline.prepare_data(table, config)
    net = pipeline.build_network(data, config)
    val_table = _read_val_data(opts, config, state)
    X, Y, validation = pipeline.split_validation(data, config, val_table)
    trainer = pipeline.make_trainer(net, X, Y, validation, config)
    # Store what was resolved, not what was left to defaults.
    config.update(task=data.task, loss=net.loss, lr=trainer.opt.lr)
    if state is not None:
        try:
            trainer.load_state(state["checkpoint"], state["arrays"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{opts['resume']}: the checkpoint's training state is "
                                 f"damaged ({type(e).__name__}: {e})") from None
    for path in (output, loss_log_path, opts["checkpoint"]):
        if path:
            check_writable(path)

    callbacks = []
    progress = None
    if not opts["quiet"]:
        progress = Progress(trainer.epochs, every=opts["log_every"])
        callbacks.append(progress)
    metric_names = ["val_accuracy"] if validation is not None and data.task == "classification" else []
    log = LossLogWriter(loss_log_path, metric_names, trainer.history.records)
    callbacks.append(log)
    if opts["checkpoint"]:
        val_info = None if val_table is None else {"path": os.path.abspath(val_table.source),
                                                   "sha256": val_table.sha256}
        callbacks.append(_checkpointer(opts["checkpoint"], opts["checkpoint_every"], net, data,
                                       config, table.sha256, val_info))
    if not opts["quiet"]:
        echo_err(f"Training {_describe(net)} on {len(X)} rows"
                 + (f", validating on {len(validation[0])}" if validation
                    else ", no validation (too few rows for --val-split)" if config.get("val_split")
                    else "")
                 + f" ({data.task}, {net.loss}, {config.get('optimizer')}).")
    try:
        trainer.run(callbacks)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted(trainer, opts)) from None
    except DivergenceError:
        if opts["save_diverged"]:
            # The parameters of the last epoch that ended finite: a NaN model is no model.
            net.phi[:] = trainer.phi_before_epoch
            meta = pipeline.model_meta(net, data, config, trainer, table.sha256)
            meta["diverged"] = True
            save_model(output, net, meta)
        raise
    finally:
        log.close()
        if progress is not None and trainer.history.records and trainer.epoch < trainer.epochs:
            progress.close()
    meta = pipeline.model_meta(net, data, config, trainer, table.sha256)
    save_model(output, net, meta)
    summary = {"model": output, "loss_log": loss_log_path, "task": data.task,
               "layers": net.layers, "n_params": net.n_params, "epochs": trainer.epoch,
               "stopped_early": trainer.history.stopped_early,
               "best_epoch": trainer.history.best_epoch,
               "seconds": round(trainer.history.seconds, 6),
               # Both already JSON-safe in the meta (non-finite values are None there).
               "samples_per_second": meta["samples_per_second"],
               **{k: v for k, v in meta["metrics"].items() if k != "epoch"}}
    if not opts["quiet"]:
        echo_err(_summary_line(summary))
    return summary


def _interrupted(trainer, opts):
    """The message of a run stopped by Ctrl-C or SIGTERM: what was kept, how to go on."""
    ckpt = opts["checkpoint"]
    saved = ckpt and os.path.exists(ckpt) and trainer.epoch >= opts["checkpoint_every"]
    hint = f" (continue from the last checkpoint with --resume {ckpt})" if saved else ""
    return f"interrupted after {trainer.epoch} of {trainer.epochs} epochs; no model written{hint}"


def _describe(net):
    return "→".join(map(str, net.layers)) + f" network ({net.n_params} parameters)"


def _summary_line(s):
    parts = [f"train loss {s['train_loss']:.4g}"]
    if s.get("val_loss") is not None:
        parts.append(f"val loss {s['val_loss']:.4g}")
    if s.get("val_accuracy") is not None:
        parts.append(f"val accuracy {s['val_accuracy']:.4f}")
    rate = f", {s['samples_per_second']:,.0f} samples/s" if s["samples_per_second"] else ""
    stop = f", stopped early, kept epoch {s['best_epoch']}" if s["stopped_early"] else ""
    return (f"Done: {s['epochs']} epochs in {s['seconds']:.2f} s{rate}{stop}; {', '.join(parts)}.\n"
            f"Model: {s['model']}   loss log: {s['loss_log']}")


def _beside(model_path, suffix):
    base = model_path[:-4] if model_path.lower().endswith(".npz") else model_path
    return base + suffix


def _read_val_data(opts, config, state):
    """The --val-data table; when resuming, the checkpoint's (which --val-data may name again)."""
    kwargs = read_kwargs(config if opts["resume"] else opts)
    if state is None:
        return D.read_csv(opts["val_data"], **kwargs) if opts["val_data"] else None
    saved = state["val_data"]
    if saved is None:
        if opts["val_data"]:
            raise ConfigError(f"the run in {opts['resume']} had no --val-data; resume it without one")
        return None
    table = D.read_csv(opts["val_data"] or saved["path"], **kwargs)
    if table.sha256 != saved["sha256"]:
        raise ConfigError(f"{table.source} is not the validation data the checkpoint "
                          f"{opts['resume']} was trained with (its sha256 differs)")
    return table


def _checkpointer(path, every, net, data, config, sha256, val_info):
    def save(record, trainer):
        if record.epoch % every == 0 or record.epoch == trainer.epochs:
            meta = pipeline.model_meta(net, data, config, trainer, sha256)
            # The validation file is not part of the stored config: resuming needs it too.
            meta["checkpoint"] = {**trainer.state_dict(), "val_data": val_info}
            save_model(path, net, meta, trainer.arrays())
        return False
    return save


def _resume_config(path):
    model = load_model(path)
    meta = model.meta
    if "checkpoint" not in meta or not {"opt_s1", "opt_s2"} <= set(model.arrays):
        raise ModelFileError(f"{path} is a model, not a checkpoint (train with --checkpoint)")
    if not isinstance(meta.get("config"), dict):
        raise ModelFileError(f"{path}: the checkpoint has no training configuration")
    val_data = meta["checkpoint"].get("val_data")
    if val_data is not None and not (isinstance(val_data, dict) and isinstance(val_data.get("path"), str)
                                     and isinstance(val_data.get("sha256"), str)):
        raise ModelFileError(f"{path}: the checkpoint's val_data entry is damaged")
    arrays = dict(model.arrays, phi=model.network.phi)
    return meta["config"], {"checkpoint": meta["checkpoint"], "arrays": arrays,
                            "data_sha256": meta.get("data_sha256"), "val_data": val_data}
