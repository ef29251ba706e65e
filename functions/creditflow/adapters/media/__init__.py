"""Media with Pillow: image checks, thumbnails, stripping; blob paths."""
