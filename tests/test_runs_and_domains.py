"""The shared definitions of common/: which rows continue a run of one shot (the triplets, the
stabiliser, the flicker metrics and the mask smoothing all ask them), and the directions between
the two domains."""
import pytest

from pipeline.common.domains import DOMAINS, TARGET, direction, domains_of
from pipeline.common.runs import continues, follows, segments


def test_a_run_breaks_at_a_gap_a_cut_and_another_video():
    frame = [0, 1, 2, 4, 5, 6, 0, 1]
    shot = [0, 0, 0, 0, 0, 1, 0, 0]
    video = ["a", "a", "a", "a", "a", "a", "b", "b"]
    assert continues(frame, shot).tolist() == [True, True, False, True, False, False, True]
    assert continues(frame, shot, video=video).tolist() == [True, True, False, True, False, False, True]
    assert continues([5, 6], [0, 0], video=["a", "b"]).tolist() == [False]  # same frame numbers, another video
    assert continues(frame, shot, 2).tolist() == [True, False, False, False, False, False]
    assert list(segments(frame, shot)) == [(0, 3), (3, 5), (5, 6), (6, 8)]
    assert continues([3], [0]).tolist() == [] and list(segments([], [])) == []


def test_a_streamed_frame_follows_the_last_one_of_its_shot():
    assert follows((2, 10), 2, 11) and not follows((2, 10), 2, 12) and not follows((2, 10), 3, 11)
    assert not follows(None, 2, 11)


def test_each_domain_has_one_direction_and_back():
    assert [direction(d) for d in DOMAINS] == ["A2B", "B2A"]
    assert all(domains_of(direction(d)) == (d, TARGET[d]) for d in DOMAINS)
    for bad in ("A2A", "AB", "C2D"):
        with pytest.raises(ValueError):
            domains_of(bad)
