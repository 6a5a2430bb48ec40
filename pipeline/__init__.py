"""facecycle: unpaired face-video translation with CycleGAN and Recycle-GAN, as a DVC pipeline."""
