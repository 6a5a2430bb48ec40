"""From videos to face crops: fetch, frame extraction, face crops and the train/test split."""
