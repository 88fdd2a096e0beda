"""Following objects: per-camera multi-object tracking (``bytetrack``) and cameras placed on
the ground (``ground``: image-to-ground homographies, WGS84)."""
