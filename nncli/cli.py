"""The `nncli` command: a Click group whose commands live in nncli/commands/.

This module only wires commands together and turns what can go wrong into one line on
stderr and an exit code: 0 success, 1 an error in the data, a model file or I/O,
2 a usage error (Click's), 130 interrupted. No command lets a traceback reach the user.
"""
import difflib
import errno
import importlib
import os
import signal
import sys

import click

from nncli._version import __version__

# name → (module in nncli.commands defining `command`, one-line help for `nncli --help`).
COMMANDS = {
    "train": ("train", "Train a network on a CSV file; write the model and loss log."),
    "predict": ("predict", "Stream predictions for a CSV file as CSV."),
    "evaluate": ("evaluate", "Score a model on labelled data."),
    "info": ("info", "Show what a model file holds."),
    "plot-loss": ("plot_loss", "Draw loss curves from loss logs (image or terminal)."),
    "gradcheck": ("gradcheck", "Check backprop's gradient against finite differences."),
    "descend": ("descend", "Watch optimisers descend a 2-parameter loss surface."),
    "plot-fit": ("plot_fit", "Plot 1-D models' curves over their data."),
    "sweep": ("sweep", "Search train options with Optuna; keep the best model."),
    "plot-sweep": ("plot_sweep", "Plot a sweep's history and parameter importance."),
    "plot-kan": ("plot_kan", "Draw a KAN model's learned edge functions."),
    "prune": ("prune", "Drop the faint hidden nodes of a KAN model."),
    "export": ("export", "Export a model as ONNX (the whole pipeline) or a C99 header."),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (keeps `--help` fast)."""

    def list_commands(self, ctx):
        return [name for name, (mod, _) in COMMANDS.items() if _exists(mod)]

    def get_command(self, ctx, name):
        mod, _ = COMMANDS.get(name, (None, None))
        if mod is None or not _exists(mod):
            return None
        return importlib.import_module(f"nncli.commands.{mod}").command

    def resolve_command(self, ctx, args):
        # Click suggests close option names but not command names: `nncli trian` → train.
        name = args[0] if args else None
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            match = difflib.get_close_matches(name, self.list_commands(ctx), 1)
            if match:
                ctx.fail(f"No such command {name!r}. Did you mean {match[0]!r}?")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        # From the table above, without importing every command (and numpy) for --help.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        # Library errors, I/O errors and Ctrl-C become Click's "Error: …" here, with their
        # exit code, so CliRunner sees what a user sees; usage errors are shortened to one line.
        from nncli.errors import NncliError
        from nncli.interrupts import interrupted_during
        try:
            return super().invoke(ctx)
        except NncliError as e:
            raise _error(str(e), e.exit_code) from None
        except KeyboardInterrupt as e:   # SIGINT, or SIGTERM (see main)
            raise _error(str(e) or "interrupted", 130) from None
        except click.UsageError as e:
            if isinstance(e, OneLineUsageError):
                raise
            raise OneLineUsageError(e.format_message(), e.ctx) from None
        except MemoryError:
            raise _error("out of memory", 1) from None
        except Exception as e:
            # Ctrl-C that struck a library's cleanup code and surfaced as that code's error.
            if interrupted_during(e):
                raise _error("interrupted", 130) from None
            if not isinstance(e, OSError):
                raise
            if e.errno == errno.EPIPE:
                raise PipeClosed() from None
            raise _error(_os_error_message(e), 1) from None


class OneLineUsageError(click.UsageError):
    """Click's usage error as one line on stderr: what is wrong, and where help is."""

    def show(self, file=None):
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{hint}", err=True, file=file)


class PipeClosed(Exception):
    """stdout's reader went away (`nncli predict … | head`): main() ends quietly."""


def _os_error_message(e):
    """'file: what went wrong', the form every other nncli error takes."""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


def _error(message, exit_code):
    e = click.ClickException(message)
    e.exit_code = exit_code
    return e


def _exists(mod):
    return os.path.exists(os.path.join(os.path.dirname(__file__), "commands", f"{mod}.py"))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nncli")
def cli():
    """Train multi-layer perceptrons on CSV data.

    \b
    Examples:
      nncli train data/iris.csv                      # → iris.npz, iris.loss.csv
      nncli predict iris.npz data/iris.csv --proba   # CSV on stdout
      cat data/iris.csv | nncli predict iris.npz - | head
      nncli evaluate iris.npz data/iris.csv
      nncli plot-loss iris.loss.csv -o loss.png

    Exit codes: 0 success, 1 error (data, model file, I/O), 2 usage error, 130 interrupted.
    """


def main(argv=None):
    """Entry point: run the CLI, mapping every failure to a message and an exit code."""
    from nncli.errors import NncliError
    # SIGTERM behaves like Ctrl-C: stop, clean up, write nothing half-done.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        # Without standalone mode Click returns the exit code of ctx.exit(n), and raises the
        # rest for us to report; commands return nothing.
        code = cli.main(args=argv, prog_name="nncli", standalone_mode=False)
    except click.exceptions.Abort:
        _quiet_exit("Error: interrupted", 130)
    except PipeClosed:
        _broken_pipe()
    except click.UsageError as e:   # before a command runs (`nncli --bad`, `nncli nope`)
        OneLineUsageError(e.format_message(), e.ctx).show()
        _exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        _exit(e.exit_code)
    except click.exceptions.Exit as e:
        _exit(e.exit_code)
    except NncliError as e:  # raised outside a command (should not happen, but never a traceback)
        _quiet_exit(f"Error: {e}", e.exit_code)
    except KeyboardInterrupt:
        _quiet_exit("Error: interrupted", 130)
    except BrokenPipeError:
        _broken_pipe()
    except MemoryError:
        _quiet_exit("Error: out of memory", 1)
    except OSError as e:
        if e.errno == errno.EPIPE:
            _broken_pipe()
        _quiet_exit(f"Error: {_os_error_message(e)}", 1)
    _exit(code if isinstance(code, int) else 0)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _broken_pipe():
    # The reader went away (`nncli predict … | head`): stop quietly, like other Unix tools.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    os._exit(0)


def _quiet_exit(message, code):
    try:
        click.echo(message, err=True)
    except OSError:
        pass
    _exit(code)


def _exit(code):
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _broken_pipe()
    except OSError:
        pass
    sys.exit(code)
