"""The GTC 2019 talk's face-centred central composite design and its measured results.

20 runs (8 factorial, 6 axial, 6 centre) of a Spark + TensorFlow detection system, from the
slide "FCCD matrix and measured results": executors per GPU (1-3), batch size (1-15) and
video decoding rate (1-9 Hz) against throughput (images/s) and processing time (s).
``run`` is the talk's "RUN No".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from argus.doe.designs import Factor

TALK_FCCD_CSV = Path(__file__).with_name("data") / "talk_fccd.csv"

TALK_FACTORS = (
    Factor("executors", 1, 3, integer=True, unit="per GPU"),
    Factor("batch_size", 1, 15, integer=True),
    Factor("decoding_rate", 1, 9, integer=True, unit="Hz"),
)

TALK_RESPONSES = ("throughput", "processing_time")  # images/s, s


def talk_fccd() -> pd.DataFrame:
    """The talk's 20 runs: ``run``, the three factors and the two responses."""
    return pd.read_csv(TALK_FCCD_CSV)


__all__ = ["TALK_FACTORS", "TALK_FCCD_CSV", "TALK_RESPONSES", "talk_fccd"]
