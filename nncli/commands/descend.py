"""nncli descend: an optimiser playground on two-parameter loss surfaces."""
import click

from nncli.optim import OPTIMIZERS
from nncli.surfaces import SURFACES


def _floats(text, what, n=None):
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give numbers separated by commas") from None
    if n is not None and len(values) != n:
        raise click.BadParameter(f"{text!r}: give {n} numbers ({what})")
    return values


def _per_optimizer(values, names, option):
    """One value for all optimisers, or one each (None: each optimiser's default)."""
    if values is None:
        return [None] * len(names)
    if len(values) == 1:
        return values * len(names)
    if len(values) != len(names):
        raise click.BadParameter(f"give one value or one per optimiser ({len(names)})",
                                 param_hint=option)
    return values


@click.command("descend")
@click.argument("surface", required=False, type=click.Choice(list(SURFACES)))
@click.option("--expr", metavar="EXPRESSION",
              help="Your own loss in phi1, phi2 (or φ1 φ2, x y), e.g. 'x**2 + 10*sin(y)**2'; "
                   "its gradient is derived exactly (needs sympy: pip install 'nncli[symbolic]').")
@click.option("--optimizer", "optimizers", default="gd", show_default=True, metavar="NAME[,NAME…]",
              help=f"One or several, comma-separated: {', '.join(OPTIMIZERS)}.")
@click.option("--lr", metavar="LR[,LR…]",
              help="Learning rate, one for all or one per optimiser [default: each optimiser's].")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), metavar="μ",
              help="Momentum μ (momentum, nesterov); same as --beta1 for adam/adamw.")
@click.option("--beta1", type=click.FloatRange(0, 1, max_open=True), metavar="β1",
              help="Adam's β1 [default: 0.9].")
@click.option("--beta2", type=click.FloatRange(0, 1, max_open=True), metavar="β2",
              help="Adam's β2 [default: 0.999], RMSProp's ρ [default: 0.99].")
@click.option("--start", metavar="φ1,φ2", help="Starting point [default: the surface's].")
@click.option("--steps", type=click.IntRange(0, 1_000_000), default=100, show_default=True,
              help="Updates per optimiser.")
@click.option("--noise", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="σ",
              help="Standard deviation of Gaussian noise added to each gradient component.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the noise.")
@click.option("--plot", "plot_path", metavar="FILE",
              help="Also draw the contours and every path to FILE (.png, .svg or .pdf).")
@click.option("--title", help="Title of the --plot image.")
def command(surface, expr, optimizers, lr, momentum, beta1, beta2, start, steps, noise, seed,
            plot_path, title):
    """Run optimisers on a 2-parameter loss surface; print each path as CSV.

    SURFACE is one of:

    \b
      bowl        (φ1 − 3)² + (φ2 − 2)²                    start (0, 0)
      ravine      50·φ1² + φ2²                             start (1, 2)
      sincos      (sin φ1·cos φ2 + sin φ2·cos φ1 + 2) / 4  start (1, 0.5)
      rosenbrock  (1 − φ1)² + 100·(φ2 − φ1²)²              start (−1.2, 1)

    or give --expr instead. The updates are the training kernels' (nncli.optim).
    stdout gets step,optimizer,phi1,phi2,loss,grad1,grad2 with step 0 the start; grad1/grad2
    is the exact gradient at that point (before --noise). A path that diverges (a
    non-finite value, or |φ| or the loss beyond 1e6) stops there with a warning on stderr;
    the others go on. Exit 0 even then (showing divergence is the point); 1 only when the
    start itself is unusable or the plot cannot be written.

    \b
    Examples:
      nncli descend bowl --lr 0.1 --steps 20
      nncli descend ravine --optimizer gd,adam --lr 0.1 --plot ravine.png
      nncli descend sincos --optimizer gd,momentum --lr 1 --noise 0.05 --plot noisy.png
      nncli descend --expr 'x**2 + 10*sin(y)**2' --start 2,1 --optimizer adam --lr 0.05
      nncli descend bowl --steps 50 | tail -1
    """
    import numpy as np

    from nncli import surfaces
    from nncli.csvio import writer as csv_out
    from nncli.errors import NncliError
    from nncli.optim import Optimizer
    if (surface is None) == (expr is None):
        raise click.UsageError("give a SURFACE or --expr (exactly one)")
    if momentum is not None and beta1 is not None and momentum != beta1:
        raise click.UsageError("--momentum and --beta1 set the same parameter; give one")
    names = [n.strip() for n in optimizers.split(",")]
    for n in names:
        if n not in OPTIMIZERS:
            raise click.BadParameter(f"unknown optimiser {n!r}; choose from {', '.join(OPTIMIZERS)}",
                                     param_hint="--optimizer")
    lrs = _per_optimizer(None if lr is None else _floats(lr, "learning rates"), names, "--lr")
    if any(v is not None and not v > 0 for v in lrs):
        raise click.BadParameter("learning rates must be positive", param_hint="--lr")
    if plot_path:
        from nncli.plot import image_format
        image_format(plot_path)          # a bad file name fails before any output
    start = None if start is None else _floats(start, "φ1,φ2", 2)
    surf = surfaces.get_surface(surface, expr, start)
    start = start if start is not None else surf.start
    mu = momentum if momentum is not None else beta1
    opts = [Optimizer(n, lr=v, momentum=mu, beta2=beta2) for n, v in zip(names, lrs)]
    labels = _labels(opts)
    paths = []
    for opt, label in zip(opts, labels):
        # One noise stream per optimiser, so adding another one does not change the others.
        path = surfaces.descend(surf, opt, start, steps, noise=noise,
                                rng=np.random.default_rng([seed, len(paths)]) if noise else None,
                                label=label)
        if path.diverged and path.diverged_step == 0:
            # The start is shared: the first path finds it unusable, before any output.
            raise NncliError(f"cannot start at ({start[0]:g}, {start[1]:g}): "
                             f"{path.diverged.removeprefix('the start is unusable: ')}")
        if not paths:
            click.echo(csv_out.header(["step", "optimizer", "phi1", "phi2", "loss", "grad1",
                                       "grad2"]), nl=False)
        paths.append(path)
        field = csv_out.quote(label)
        click.echo("".join(
            csv_out.row([str(t), field, *(csv_out.number(v, ".10g") for v in (p1, p2, loss, g1, g2))])
            for t, ((p1, p2), loss, (g1, g2)) in enumerate(zip(path.phi, path.loss, path.grad))),
            nl=False)
        if path.diverged:
            click.echo(f"warning: {label} diverged at step {path.diverged_step}: {path.diverged}; "
                       f"try a smaller --lr (it was {opt.lr:g})", err=True)
    if plot_path:
        surfaces.plot_descent(surf, paths, plot_path, title=title)
        click.echo(f"wrote {plot_path}", err=True)


def _labels(opts):
    """Optimiser names, made unique with the learning rate when a name repeats."""
    names = [o.name for o in opts]
    labels = [f"{o.name} lr={o.lr:g}" if names.count(o.name) > 1 else o.name for o in opts]
    seen = {}
    for i, lab in enumerate(labels):
        seen[lab] = seen.get(lab, 0) + 1
        if seen[lab] > 1:
            labels[i] = f"{lab} #{seen[lab]}"
    return labels
