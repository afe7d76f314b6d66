"""Live diagnosis inside the trainers people use: a PyTorch Lightning ``Callback``
(:mod:`.lightning_callback`) and a Hugging Face ``TrainerCallback`` (:mod:`.hf_callback`).

Each feeds what the trainer logs to the detectors during training (:class:`.feed.LiveFeed`), logs
every new finding once (the trainer's logger and the console) and can stop the training on a
severity.  Optional: importing this package imports neither framework; each module imports its
own when it is imported, and nothing on the ``diagnose`` path imports them.

    from trainfix.trainers.integrations.lightning_callback import TrainfixCallback  # Lightning
    from trainfix.trainers.integrations.hf_callback import TrainfixCallback         # transformers
"""
