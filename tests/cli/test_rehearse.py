"""``probe rehearse``'s command line: it offers only options that change what it does."""

from __future__ import annotations

import pytest

from probe.cli import run


def test_rehearse_offers_no_open_path_its_decode_always_closes_at_stage_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The decode round trip is timed on stage 1, so the path always closes back there: an
    ``--open`` that rehearse accepted would change nothing it sends or predicts."""
    assert run(["rehearse", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--ring" not in help_text and "--open" not in help_text
    assert "--tokens" in help_text and "--stages" in help_text  # the other shape options stay
    assert run(["calc", "--help"]) == 0
    assert "--ring / --open" in capsys.readouterr().out  # calc keeps it: it changes its hops
    for flag in ("--open", "--ring"):
        assert run(["rehearse", "inventory.yaml", flag]) == 2
        assert f"No such option '{flag}'" in capsys.readouterr().err
