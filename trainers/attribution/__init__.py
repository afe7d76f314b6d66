"""Attribution maps and their quality: Grad-CAM, Guided Backprop, Integrated Gradients.

- :mod:`.layers`: find a layer by name (one-line error listing the layers), the default layer,
  wrappers that let captum call trainfix's models and any user ``nn.Module``.
- :mod:`.maps`: inference-time maps through captum (``compute_maps``).
- :mod:`.gradcam`: Grad-CAM and Guided Backprop written here so a loss can train through them
  (``create_graph=True``), tested equal to captum's; ATCON uses them.
- :mod:`.metrics`: entropy, Hoyer sparsity, blank maps, Grad-CAM / Guided Backprop agreement,
  pointing game and energy-in-box.
- :mod:`.summary`: per-sample records and the ``attn/*`` scalars.
- :mod:`.evaluation`: what the trainer logs at evaluation.
- :mod:`.render`: the PNG grids of ``trainfix attention``.

torch and captum are imported here; nothing in ``diagnostics`` imports this package, so reading
logs stays light.
"""
