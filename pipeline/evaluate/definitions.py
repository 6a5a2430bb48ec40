"""What each metric of the metrics stage is called and means, and how its figures print: shared by
the markdown report (metrics stage) and the results page, which must not import the metrics' own code
(a change to a metric's maths would otherwise rerun the page, and the page would load torch and dlib)."""
from __future__ import annotations

import math
from typing import NamedTuple

from pipeline.evaluate.identity_scores import SAME_PERSON

DRIFT_GAP = 5  # frames between the pairs of the long-range warping error

# what a row scores (column `scored`), as the report and the results page head its tables
SCORED = ("crops", "merged")
SCORED_TITLES = {
    "crops": "the model's crops",
    "merged": "merged result videos (what the viewer sees)",
}
SCORED_NOTES = {
    "crops": "The translated face crops as the model wrote them (data/translated), at the model's crop size; the "
             "`input` rows score the untranslated test crops the same way.",
    "merged": "The crop square of each tracked face cut back out of the decoded result video (results/<model>/), "
              "after the mask, colour match, blend and H.264: at the crops' size for the temporal figures, at the "
              "describer's face size (the face's own pixels, resampled once) for identity and motion. The `input` "
              "rows cut the source frames the same way. Each model's row is the translation its merged video "
              "shows (see above).",
}



class Metric(NamedTuple):
    header: str        # the column header
    meaning: str       # what it says
    over_videos: str   # how a model's figure over videos is made: "mean" of the videos' figures, "frames"
                       # (PSNR over all their frames), "pooled" (from the descriptors of all their frames)
    plot: bool = True  # drawn as a bar chart per video


# metric -> its definition; the order of the tables
METRICS = {
    "warping_error": Metric(
        "warping error",
        "Lai et al. (ECCV 2018): mean squared difference (pixels in [0, 1]) between output frame t and output frame "
        "t+1 warped back with the flow of the *input* (OpenCV Farneback), over pixels kept by the forward-backward "
        "occlusion check, averaged over consecutive pairs of one shot. Lower is steadier; the `input` row (scored at "
        "the models' crop size) is what a translator that moves exactly like the input scores.",
        "mean"),
    "drift": Metric(
        f"warping error t+{DRIFT_GAP}",
        f"the same between frames t and t+{DRIFT_GAP} (Farneback flow between them): long-range consistency, where a "
        "stabiliser that drifts away from the input's motion would show.",
        "mean"),
    "tof": Metric(
        "tOF",
        "TecoGAN (Chu et al. 2020): mean length in pixels of the difference between the output's own flow and the "
        "input's flow for each pair; 0 means the output moves exactly like the input.",
        "mean"),
    "mouth_motion": Metric(
        "mouth motion",
        "motion fidelity: Pearson correlation over time between the output's and the input's mouth opening (inner-lip "
        "gap over the distance between the eyes, dlib's 68 landmarks in the same face rectangle of both), per shot of "
        ">= 10 frames, averaged weighted by frames. 1: the mouth moves as the input's does; ~0: a frozen face, however "
        "low its warping error.",
        "mean"),
    "eye_motion": Metric(
        "eye motion",
        "the same for the eye aspect ratio (Soukupova and Cech 2016): do the blinks follow?",
        "mean", plot=False),
    "raw_psnr": Metric(
        "PSNR to raw (dB)",
        "stabilised rows only: PSNR between the stabilised and the per-frame translation it was made from, how much "
        "the stabiliser changed (fidelity to the translator); over videos, the PSNR over all their frames (inf: every "
        "video left as it was).",
        "frames"),
    "identity_share": Metric(
        "identity share",
        "share of described frames whose dlib face descriptor is nearer the target domain's centroid than the source "
        "domain's (centroids from real train crops; a frame with no face found counts as not nearer). Higher means "
        "the identity was transferred.",
        "pooled"),
    "target_distance": Metric(
        "distance to target",
        f"mean distance of the descriptors to the target centroid; dlib calls two faces the same person below "
        f"{SAME_PERSON}.",
        "pooled"),
    "frechet": Metric(
        "Fréchet distance",
        "realism in dlib's descriptor space: Fréchet distance between Gaussians fitted to translated and real target "
        "train descriptors (FID's formula). Lower is closer to real target faces; with few frames (one video) it is "
        "biased upwards, compare it between models, not with other work.",
        "pooled"),
    "psnr": Metric(
        "PSNR (dB)",
        "reconstruction A->B->A (or B->A->B) against the input crops at the model's size, from the mean squared error "
        "over the clip; inf when identical.",
        "mean"),
    "ssim": Metric(
        "SSIM",
        "the same reconstruction, SSIM (scikit-image, 7x7 window) averaged over frames; 1 is identical.",
        "mean"),
    "failures": Metric(
        "no face",
        "described frames in which no face was found (no descriptor).",
        "pooled", plot=False),
}
MEANS_OVER_VIDEOS = tuple(m for m, metric in METRICS.items() if metric.over_videos == "mean")
OVER_FRAMES = tuple(m for m, metric in METRICS.items() if metric.over_videos == "frames")
PLOTS = tuple(m for m, metric in METRICS.items() if metric.plot)
FID_NOTE = ("FID is not reported: it needs Inception weights, which cannot be obtained offline; the Fréchet distance "
            "above uses dlib's face descriptor instead and is not comparable with published FID values.")


def format_number(value) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
