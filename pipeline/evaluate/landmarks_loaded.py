"""Imported by the fork server of the mouth and eye motion workers (motion_fidelity): dlib's
68-point model is loaded here once, so the workers forked from that server share its 100 MB of
pages, and the CPU cache lines over them, instead of each holding a copy (docs/measurements/speed.md)."""
from pipeline.face.dlib_models import landmark_model

landmark_model()
