"""What the tests share: the repo and its tiny settings, real inputs made from the sample clips,
subprocess runners, a headless browser and an SSH server."""
