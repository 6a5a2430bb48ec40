"""From crops to result videos: translation, the flow stabiliser and the merge back into the frames."""
