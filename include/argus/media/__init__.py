"""Images in and out: JPEG encoding and decoding, sample photos, boxes drawn on a frame."""
