"""dlib's models, each loaded once: the HOG face detector (one per thread), the 68-point and the
5-point shape predictors and the face descriptor, all from the face_recognition_models package
(offline); and the pool of threads that runs dlib's work on every core."""
from __future__ import annotations

import functools
import importlib.util
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import dlib

from pipeline.common.errors import FacecycleError
from pipeline.face.resnet import FaceResNet

T, R = TypeVar("T"), TypeVar("R")


def model_file(name: str) -> str:
    """Path of a .dat file in face_recognition_models, found without importing the package
    (its __init__ needs pkg_resources, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacecycleError("face_recognition_models is not installed (pip install -r requirements.txt)")
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    if not path.is_file():
        raise FacecycleError(f"{path}: missing from face_recognition_models")
    return str(path)


def dlib_map(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[function(item) for item in items] on one thread per core: dlib's HOG detector releases the
    GIL, so the detection-led face work of the crop and metrics stages spreads over the cores (the
    shape predictors hold it: landmark-only work goes to processes, see evaluate.motion_fidelity);
    each item's result is its own, whatever the thread (docs/measurements/speed.md)."""
    return list(_threads().map(function, items))


@functools.cache
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0)))


_per_thread = threading.local()


def face_detector() -> dlib.fhog_object_detector:
    """dlib's HOG frontal face detector of the calling thread: a detector keeps scratch buffers
    while it runs, so threads (dlib_map) do not share one; it is built once per thread."""
    if not hasattr(_per_thread, "detector"):
        _per_thread.detector = dlib.get_frontal_face_detector()
    return _per_thread.detector


@functools.cache
def landmark_model() -> dlib.shape_predictor:
    """dlib's 68-point shape predictor (the iBUG 300-W model), loaded once per process (a 100 MB
    file): crop_faces' landmarks and the metrics' mouth and eye motion use the same one."""
    return dlib.shape_predictor(model_file("shape_predictor_68_face_landmarks.dat"))


@functools.cache
def chip_landmark_model() -> dlib.shape_predictor:
    """dlib's 5-point shape predictor, which aligns a face chip for the descriptor."""
    return dlib.shape_predictor(model_file("shape_predictor_5_face_landmarks.dat"))


@functools.cache
def descriptor_model() -> FaceResNet:
    """dlib's face recognition ResNet (128-d descriptors), run by PyTorch (pipeline.face.resnet)."""
    return FaceResNet.from_dat(model_file("dlib_face_recognition_resnet_model_v1.dat"))


def face_rectangle(cx: float, cy: float, size: float, margin: float) -> dlib.rectangle:
    """The face box inside a crop box (cx, cy, size with `margin` added on each side), as dlib's
    detector gave it to crop_faces."""
    side = size / (1 + 2 * margin)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return dlib.rectangle(x0, y0, x0 + int(round(side)) - 1, y0 + int(round(side)) - 1)
