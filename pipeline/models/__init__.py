"""The two translation methods (networks, CycleGAN, Recycle-GAN) and their registry.

Each name in MODELS is its params group, its training stage (train_<name>), its module here
(pipeline.models.<name>, whose MODEL is the training class) and its folder under models/,
data/translated/, results/ and logs/; the label is what people read on videos, sheets and pages.
"""
import importlib

MODELS = {"cyclegan": "CycleGAN", "recyclegan": "Recycle-GAN"}  # name -> label


def label(model: str) -> str:
    """The readable name of `model` (a stabilised row such as `cyclegan+flow` keeps its suffix)."""
    name, plus, mode = model.partition("+")
    return MODELS.get(name, name) + plus + mode


def model_class(name: str) -> type:
    """The training class of model `name`, imported on first use (readers of labels need no torch)."""
    return importlib.import_module(f"pipeline.models.{name}").MODEL
