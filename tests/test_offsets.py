"""The committable offset never passes unfinished work."""

from vvv_core.runtime.offsets import PartitionOffsets


def test_commits_up_to_the_first_unfinished_offset():
    p = PartitionOffsets()
    assert p.committable() is None
    for offset in (10, 11, 12, 13):
        p.take(offset)
    assert p.committable() == 10
    p.finish(12)
    p.finish(11)
    assert p.committable() == 10  # 10 still running
    p.finish(10)
    assert p.committable() == 13
    p.committed = 13
    assert p.committable() is None  # nothing new
    p.finish(13)
    assert p.committable() == 14 and p.unfinished == 0


def test_a_new_message_clears_end_of_partition():
    p = PartitionOffsets()
    p.eof = True
    p.take(0)
    assert not p.eof


def test_a_partition_just_assigned_is_not_at_its_end_until_a_fetch_says_so():
    """``--until-idle`` stops a member once every partition is at its end: a partition not fetched yet is not."""
    assert not PartitionOffsets().eof


def test_an_offset_finished_but_never_taken_lets_no_unfinished_one_be_committed():
    """The batch-at-once clear needs the finished offsets to be the open ones, not only as many of them."""
    p = PartitionOffsets()
    p.take_all([10, 11])
    p.finish_all([11, 99])  # 99 never taken: two finished, two open, but 10 is still running
    assert p.committable() == 10 and p.unfinished == 2
