"""One module per model family; each exposes ``build(name, *, layer, pretrained, weights, strict_weights)``
returning a :class:`~qrprobe.models.base.Representation`. They import their library lazily."""
