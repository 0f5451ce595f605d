"""Progress of a training run on stderr: a live bar on a terminal, a line per epoch otherwise.

Only the CLI uses this; the library reports progress through callbacks.
"""
import math
import sys
import time

from nncli.csvio import writer as csv_out


def _fmt(x):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class Progress:
    """A training callback: `Progress(total_epochs, ...)(record, trainer)`."""

    def __init__(self, total_epochs, stream=None, every=1, live=None, width=24):
        self.total = total_epochs
        self.stream = stream or sys.stderr
        self.every = max(1, every)
        self.live = self.stream.isatty() if live is None else live
        self.width = width
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def __call__(self, record, trainer):
        done = record.epoch
        elapsed = time.perf_counter() - self.start
        rate = trainer.history.samples_per_second
        parts = [f"train {_fmt(record.train_loss)}"]
        if not math.isnan(record.val_loss):
            parts.append(f"val {_fmt(record.val_loss)}")
        parts += [f"{k.removeprefix('val_')} {v:.4f}" for k, v in record.metrics.items()]
        speed = f"{rate:,.0f} samples/s" if math.isfinite(rate) else ""
        if self.live:
            now = time.perf_counter()
            if done < self.total and now - self._last_draw < 0.1:
                return False  # redraw at most ten times a second
            self._last_draw = now
            frac = done / self.total if self.total else 1.0
            filled = int(round(frac * self.width))
            eta = elapsed / done * (self.total - done) if done else 0.0
            bar = "█" * filled + "·" * (self.width - filled)
            line = (f"\r{bar} epoch {done}/{self.total}  {'  '.join(parts)}  {speed}  "
                    f"ETA {eta:.0f}s\x1b[K")
            self.stream.write(line)
            if done >= self.total:
                self.stream.write("\n")
        elif done % self.every == 0 or done == self.total:
            self.stream.write(f"epoch {done}/{self.total}  {'  '.join(parts)}  lr {record.lr:.3g}  {speed}\n")
        self.stream.flush()
        return False

    def close(self):
        """End a live bar's line (when training stopped before the last epoch)."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


class LossLogWriter:
    """Writes the loss log CSV, one row per epoch, flushed so it can be watched live
    (``nncli.plot.read_loss_log`` reads it back as a ``LossCurve``).

    Columns: epoch,train_loss,val_loss,<metrics…>,lr,seconds. Losses, metrics and the
    learning rate are written exactly (the shortest text of the float); an empty val_loss
    means no validation set.
    """

    def __init__(self, path, metric_names, records=()):
        self.path = path
        self.metric_names = list(metric_names)
        self.file = open(path, "w", encoding="utf-8", newline="")
        self.file.write(csv_out.header(["epoch", "train_loss", "val_loss", *self.metric_names,
                                        "lr", "seconds"]))
        for r in records:
            self._write(r)
        self.file.flush()

    def _write(self, r):
        number = csv_out.number
        values = [str(r.epoch), number(r.train_loss),
                  "" if math.isnan(r.val_loss) else number(r.val_loss)]
        values += [number(r.metrics.get(m, float("nan"))) for m in self.metric_names]
        values += [number(r.lr), number(r.seconds, ".6f")]
        self.file.write(csv_out.row(values))

    def __call__(self, record, trainer):
        self._write(record)
        self.file.flush()
        return False

    def close(self):
        self.file.close()
