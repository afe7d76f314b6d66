"""A config-driven PyTorch trainer that logs what the detectors read.

``config`` validates a YAML run config; ``components`` holds the registries (datasets, models,
losses, optimizers, schedules); ``loop`` is one readable training loop; ``checkpoint`` saves and
resumes atomically with clean keys; ``logging`` writes TensorBoard events and ``metrics.jsonl``
under the canonical tag names.
"""
