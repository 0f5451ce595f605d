"""nncli descend: an optimiser playground on two-parameter loss surfaces."""
import click

from nncli.commands.options import CommaList, click_type, dashed, number_in
from nncli.optim import OPTIMIZERS, STEP_RULES
from nncli.params import refuse_inapplicable
from nncli.surfaces import SURFACES


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


def _start(ctx, param, value):
    if value is not None and len(value) != 2:
        raise click.BadParameter(f"give 2 numbers (φ1,φ2), not {len(value)}")
    return value


@click.command("descend")
@click.argument("surface", required=False, type=click.Choice(list(SURFACES)))
@click.option("--expr", metavar="EXPRESSION",
              help="Your own loss in phi1, phi2 (or φ1 φ2, x y), e.g. 'x**2 + 10*sin(y)**2'; "
                   "its gradient is derived exactly (needs sympy: pip install 'nncli[symbolic]').")
@click.option("--optimizer", "optimizers", type=CommaList(choices=list(STEP_RULES)), default="gd",
              show_default=True, metavar="NAME[,NAME…]",
              help=f"One or several, comma-separated: {', '.join(STEP_RULES)}.")
@click.option("--lr", type=CommaList(number_in("lr")), metavar="LR[,LR…]",
              help="Learning rate, one for all or one per optimiser [default: each optimiser's].")
@click.option("--momentum", type=click_type("momentum"), metavar="μ",
              help="Momentum μ (momentum, nesterov) [default: 0.9].")
@click.option("--beta1", type=click_type("beta1"), metavar="β1",
              help="β1 (adam, adamw) [default: 0.9].")
@click.option("--beta2", type=click_type("beta2"), metavar="β2",
              help="β2 (adam, adamw) [default: 0.999], ρ (rmsprop) [default: 0.99].")
@click.option("--start", type=CommaList(number_in()), callback=_start, metavar="φ1,φ2",
              help="Starting point [default: the surface's].")
@click.option("--steps", type=click.IntRange(0, 1_000_000), default=100, show_default=True,
              help="Updates per optimiser.")
@click.option("--noise", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="σ",
              help="Standard deviation of Gaussian noise added to each gradient component.")
@click.option("--seed", type=click_type("seed"), default=0, show_default=True,
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
    start itself is unusable or the plot cannot be written; 2 for bad options, a refused
    --expr among them.

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
    names = optimizers
    if not names:
        raise click.BadParameter("name at least one optimiser", param_hint="--optimizer")
    # Each hyper-parameter goes to the chosen optimisers that take it; one that none of
    # them takes is a usage error naming it.
    given = {k: v for k, v in (("momentum", momentum), ("beta1", beta1), ("beta2", beta2))
             if v is not None}
    try:
        refuse_inapplicable(given, names, "optimizer",
                            {o.name: o.hyperparameters for o in OPTIMIZERS.values()}, dashed)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    lrs = _per_optimizer(lr, names, "--lr")
    if plot_path:
        from nncli.plot import image_format
        image_format(plot_path)          # a bad file name fails before any output
    surf = surfaces.get_surface(surface, expr, start)
    start = start if start is not None else surf.start
    opts = [Optimizer(n, lr=v, **{k: x for k, x in given.items() if k in OPTIMIZERS[n].hyperparameters})
            for n, v in zip(names, lrs)]
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
