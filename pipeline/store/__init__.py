"""The files stages hand each other: each format (tables, crop arrays, frames, videos) and its one checked reader."""
