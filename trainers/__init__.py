"""A config-driven PyTorch trainer that logs what the detectors read.

``config`` validates a YAML run config; ``components`` holds the registries (datasets, models,
losses, optimizers, schedules); ``loop`` is one readable training loop; ``checkpoint`` saves and
resumes atomically with clean keys; ``logging`` writes TensorBoard events and ``metrics.jsonl``
under the canonical tag names.
"""


def __getattr__(name: str):
    # ``trainfix.trainers.train`` / ``RunResult`` without importing torch until they are used.
    if name in ("train", "RunResult"):
        from trainfix.trainers import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'trainfix.trainers' has no attribute {name!r}")
