from dcl_search._words import counted


def test_counted_adds_an_s_unless_the_count_is_one() -> None:
    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
