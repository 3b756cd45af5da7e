"""The order regions are shown in: the tracked ones as the cron lists them, then any other alphabetically."""

from vvv_core.domain.regions import REGIONS, in_order


def test_tracked_regions_come_in_their_usual_order_then_others_alphabetically():
    assert in_order({"US", "ZA", "PL", "BR", "GB", "SE"}) == ["PL", "SE", "GB", "US", "BR", "ZA"]
    assert in_order(set(REGIONS)) == list(REGIONS)
    assert in_order(set()) == []
