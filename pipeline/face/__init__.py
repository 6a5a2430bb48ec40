"""Faces in frames: dlib's models loaded once, tracking, landmarks, identity descriptors, crop geometry and merge masks."""
