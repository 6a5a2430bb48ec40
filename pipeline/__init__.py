"""facecycle: unpaired face-video translation with CycleGAN and Recycle-GAN, as a DVC pipeline.

The packages are the pipeline's phases, in the order the DAG runs them; a module imports only from
its own phase or earlier ones (tests/test_layering.py):

common     params, errors, the stage runner, devices, atomic file writes, charts
store      the files stages hand each other and their checked readers
face       dlib's models, face tracking, landmarks, identity descriptors, crop geometry, masks
data       fetch, frame extraction, face crops, the train/test split
models     the registry, networks, CycleGAN, Recycle-GAN
train      the crop dataset and the training run
translate  translation, the flow stabiliser, the merge into the frames
evaluate   metrics and their definitions, the report, the results page
"""
