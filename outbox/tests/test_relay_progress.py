"""The relay's checkpoint follows only the acknowledged prefix of the stream."""

from outbox.relay import Position, Progress, Transaction


def txn(end: int, outstanding: int) -> Transaction:
    return Transaction(outstanding=outstanding, rows=outstanding, end=Position("binlog.000001", end))


def test_the_checkpoint_moves_only_past_transactions_whose_messages_were_all_acknowledged():
    first, second, third = txn(100, 2), txn(200, 1), txn(300, 0)  # third: another table's transaction
    progress = Progress(acked=Position("binlog.000001", 4))
    progress.pending.extend([first, second, third])

    second.outstanding = 0  # acknowledged out of order: the first still waits
    progress.advance()
    assert progress.acked == Position("binlog.000001", 4)

    first.outstanding = 1
    progress.advance()
    assert progress.acked == Position("binlog.000001", 4)

    first.outstanding = 0
    progress.advance()
    assert progress.acked == Position("binlog.000001", 300) and progress.acked_rows and not progress.pending


def test_a_transaction_still_being_read_holds_the_checkpoint_back():
    reading = Transaction(outstanding=0, rows=1)  # rows produced and acknowledged, its Xid not read yet
    progress = Progress(acked=Position("binlog.000001", 4))
    progress.pending.append(reading)
    progress.advance()
    assert progress.acked == Position("binlog.000001", 4)
