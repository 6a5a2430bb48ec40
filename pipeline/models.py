"""The translation models facecycle trains, in one place: each name is its params group, its training
stage (train_<name>) and its folder under models/, data/translated/, results/ and logs/; the label is
what people read on videos, sheets and pages."""
MODELS = {"cyclegan": "CycleGAN", "recyclegan": "Recycle-GAN"}  # name -> label


def label(model: str) -> str:
    """The readable name of `model` (a stabilised row such as `cyclegan+flow` keeps its suffix)."""
    name, plus, mode = model.partition("+")
    return MODELS.get(name, name) + plus + mode
