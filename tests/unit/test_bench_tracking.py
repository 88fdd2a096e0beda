"""argus bench tracking on the true boxes of a small scene (no detector): TrackEval's figures
per camera, and what they say of the tracker alone."""

import json

import numpy as np

from argus.bench.tracking import REPORTED, bench_tracking, score, sequence_data


def test_on_the_true_boxes_the_tracker_follows_every_person_without_a_switch(tmp_path):
    result = bench_tracking(cameras=2, people=3, seconds=6, rate_hz=2.0, model="truth", cache=tmp_path)
    assert result["frames_per_camera"] == 12 and set(result["runs"]) == {"truth"}
    run = result["runs"]["truth"]
    assert set(run["cameras"]) == {"plaza-0", "plaza-1"} and set(run["mean"]) == set(REPORTED)
    for cam in run["cameras"].values():
        # every true box is a confident detection: only a track's first, unconfirmed frame is missed
        assert cam["IDSW"] == 0 and cam["CLR_Pr"] == 1.0 and cam["MOTA"] >= 0.8 and cam["IDF1"] >= 0.9
        assert cam["tracks"] == cam["true_people"]
    assert "cross_camera_idf1" in result["not_measured"]
    again = bench_tracking(cameras=2, people=3, seconds=6, rate_hz=2.0, model="truth", cache=tmp_path)
    assert json.dumps(again["runs"]["truth"]["cameras"]) == json.dumps(run["cameras"])  # the scene is kept


def test_an_id_switch_halfway_costs_idf1_and_counts_once():
    box = (0.1, 0.1, 0.2, 0.4)
    truth = [[(7, box)] for _ in range(10)]
    same = [[(1, box)] for _ in range(10)]
    switched = [[(1 if t < 5 else 2, box)] for t in range(10)]
    perfect, broken = score(sequence_data(truth, same)), score(sequence_data(truth, switched))
    assert perfect["MOTA"] == 1.0 and perfect["IDF1"] == 1.0 and perfect["IDSW"] == 0
    assert broken["IDSW"] == 1 and broken["IDF1"] == 0.5 and np.isclose(broken["MOTA"], 0.9)
