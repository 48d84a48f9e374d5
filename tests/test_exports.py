from __future__ import annotations

import botkit


def test_all_matches_what_the_package_exports() -> None:
    assert sorted(botkit.__all__) == sorted(botkit._EXPORTS)
    for name in botkit.__all__:
        assert getattr(botkit, name).__name__ == name


def test_unknown_attribute_raises() -> None:
    try:
        botkit.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("expected AttributeError")
