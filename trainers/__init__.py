"""A config-driven PyTorch trainer that logs what the detectors read.

``config`` validates a YAML run config; ``components`` holds the registries (datasets, models,
losses, optimizers, schedules); ``loop`` is one readable training loop (an outer loop over
optimizer steps, an inner one over micro-batches), ``stage`` builds what one stage trains with,
``state`` holds the counters a resumed run continues from, ``sampling`` the per-epoch data order,
``ema`` the weight average; ``checkpoint`` saves and resumes atomically with clean keys; ``logging`` writes TensorBoard events and ``metrics.jsonl``
under the canonical tag names; ``distributed`` launches and joins DDP through torchrun.

Python API: ``train(config, out_dir=None, resume=False, overrides=(), init_from=None) ->
RunResult(out_dir, metrics, best, step)``, the same as ``trainfix train``.
"""


def __getattr__(name: str):
    # ``trainfix.trainers.train`` / ``RunResult`` without importing torch until they are used.
    if name in ("train", "RunResult"):
        from trainfix.trainers import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'trainfix.trainers' has no attribute {name!r}")
