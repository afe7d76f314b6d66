"""Let uncertainty weights learn: small random init, sane bounds, their own optimizer group and lr.

What it changes
---------------
``loss.log_var_init: random`` with ``log_var_init_std: 0.1``; ``loss.log_var_bounds: [-2, 2]``
(widened back when narrower); ``loss.log_var_lr: 0.01`` when the optimizer's lr is below that;
``loss.log_var_in_optimizer: true``.  Foreign configs: the matching keys, each only with a value of
the kind it holds (a numeric ``log_var_init: 0.0`` is never given the word ``random``: the user's
script would crash on it), else advice with code.
A relaunch starts fresh (no warm start: resuming would restore the stuck log-variances).

When to use
-----------
``uncertainty-weights-similar``: Kendall weights ``exp(-s_i)`` sit in a narrow band and do not
move while the task losses differ; ``accuracy-collapse`` in a multi-task run whose weights froze.

Why
---
With ``sum exp(-s_i) L_i + s_i`` each ``s_i`` should settle at ``log L_i``; if the weights stay
equal, the ``s_i`` are not being learned: left out of the optimizer, or moved by an lr scaled
down for the batch (1.6e-5 in the seed story moves them ~0.005 in 300 steps).  An own lr of 1e-2
lets them cross their range in a few hundred steps whatever the model's lr.  A small random init
(std 0.1) breaks the symmetry of all-zero starts.  The seed also narrowed the bounds from
[-2, 2] to [-1, 1]; that is wrong: it caps the weights at [0.37, 2.7] and squeezes them
together, the very symptom.  We keep [-2, 2].

Example diff
------------
::

     loss:
       name: uncertainty-multitask
    -  log_var_init: zeros
    -  log_var_lr: null
    -  log_var_in_optimizer: false
    +  log_var_init: random
    +  log_var_lr: 0.01
    +  log_var_in_optimizer: true
    +  log_var_init_std: 0.1
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe

INIT_STD = 0.1
BOUNDS = [-2.0, 2.0]
LOG_VAR_LR = 0.01


class UncertaintyReinit(Recipe):
    __doc__ = __doc__

    id = "uncertainty-reinit"
    resolves = ("uncertainty-weights-similar", "accuracy-collapse")
    knobs = ("log_var_init", "log_var_init_std", "log_var_bounds", "log_var_lr", "log_var_in_optimizer")
    warm_start = False

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        if b.own and str(b.section("loss").get("name", "")) != "uncertainty-multitask":
            return self.skip(f"loss '{b.section('loss').get('name')}' has no uncertainty weights "
                             "(only uncertainty-multitask learns log-variances)")
        if not b.own and not any(b.has(k) for k in self.knobs):
            b.advice("your config has no uncertainty-weighting settings: initialise the log-variances with "
                     f"torch.randn(n_tasks) * {INIT_STD:g}, clamp them to [-2, 2], and give them their own "
                     f"optimizer group: {{'params': [log_vars], 'lr': {LOG_VAR_LR:g}, 'weight_decay': 0}}")
            return b.result()
        if str(b.get("log_var_init", "zeros")).lower() != "random":
            b.set("log_var_init", "random", "small random init breaks the symmetry of all-zero starts",
                  advice=f"initialise the log-variances in your code with torch.randn(n_tasks) * {INIT_STD:g}: "
                         "one number for all of them starts every task at the same weight")
        std = b.get_float("log_var_init_std")
        if std is None or std <= 0 or std > 0.5:
            b.set("log_var_init_std", INIT_STD, "small: starts near weight 1 for every task")
        bounds = b.get("log_var_bounds")
        if bounds is not None and isinstance(bounds, (list, tuple)) and len(bounds) == 2:
            lo, hi = float(bounds[0]), float(bounds[1])
            if lo > BOUNDS[0] or hi < BOUNDS[1]:
                b.set("log_var_bounds", list(BOUNDS), "[-2, 2]: narrower bounds squeeze the weights together")
        elif b.own:
            b.set("log_var_bounds", list(BOUNDS), "bounded log-variances, weights in [0.14, 7.4]")
        lr = b.get_float("lr")
        own_lr = b.get_float("log_var_lr")
        if (own_lr is None or own_lr < LOG_VAR_LR) and (lr is None or lr < LOG_VAR_LR):
            b.set("log_var_lr", LOG_VAR_LR, "own lr: log-variances cross their range in a few hundred steps",
                  advice=f"give the log-variances their own optimizer group with lr {LOG_VAR_LR:g}")
        if b.get("log_var_in_optimizer") is not True:
            b.set("log_var_in_optimizer", True, "the log-variances must be optimised to be learned",
                  advice="make sure the log-variance parameters are passed to the optimizer")
        return self.finish(b, "the log-variances are already randomly initialised, bounded and optimised with their own lr")
