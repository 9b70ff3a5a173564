from __future__ import annotations

import pytest
import torch.nn as nn

from suite.errors import UsageError
from suite.registry import Registry
from suite.task import TASKS
from suite.variants import NORMS, parse_variant


def test_duplicate_names_are_errors() -> None:
    reg = Registry("widget", None, "normbench.test-widgets")
    reg.register("a", nn.Identity)
    reg.register("a", nn.Identity)  # the same object again is harmless (re-import)
    with pytest.raises(ValueError, match="duplicate widget name 'a'"):
        reg.register("a", nn.ReLU)


def test_unknown_name_lists_known_and_closest() -> None:
    reg = Registry("widget", None, "normbench.test-widgets")
    for name in ("prepbn", "repbn", "rms"):
        reg.register(name, type(name, (), {}))
    with pytest.raises(UsageError, match=r"Did you mean 'prepbn'\?.*prepbn, repbn, rms"):
        reg.get("prepnb")


@pytest.mark.parametrize("bad", ["", "a+b", "a,b", " a", "a@b"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(ValueError):
        Registry("widget", None, "x").register(bad, object)


def test_in_tree_entries_are_discovered_from_their_files() -> None:
    assert {"ln", "none"} <= set(NORMS.names())
    assert "imagenet" in TASKS.names()


def test_plugins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from conftest import PLUGINS
    known = set(NORMS.names())
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("NORMBENCH_PLUGINS", "faulty_norms")
    monkeypatch.setattr(NORMS, "_discovered", False)
    monkeypatch.delitem(sys.modules, "faulty_norms", raising=False)
    try:
        assert "boom" in NORMS.names()
    finally:  # no other test sees the test plugins
        for name in set(NORMS.names()) - known:
            NORMS.unregister(name)


def test_parse_variant() -> None:
    assert parse_variant("ln").name == "ln" and parse_variant("ln").attention is None
    for bad in ("ln+", "ln++sla", "ln@", "ln@peri@peri", "+sla", "ln+qknorm+qknorm"):
        with pytest.raises(UsageError, match="malformed variant"):
            parse_variant(bad)
    with pytest.raises(UsageError, match="unknown attention"):
        parse_variant("ln+a+b")
    with pytest.raises(UsageError, match="unknown placement"):
        parse_variant("ln@nowhere")
    with pytest.raises(UsageError, match="two attention mechanisms"):
        parse_variant("ln+sla+softmax")
    with pytest.raises(UsageError, match="unknown norm"):
        parse_variant("nope")


def test_threads_that_look_up_names_during_a_discovery_wait_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep works on groups in threads: none may see a registry half discovered (empty)."""
    import threading
    import time

    from suite.registry import REGISTRIES, Registry
    reg = Registry("thing", None, "normbench.test-none")
    found = reg._discover

    def slow() -> None:
        time.sleep(0.3)   # the discovery of a package of plugins, slowed
        reg.register("a", object)
        found()

    monkeypatch.setattr(reg, "_discover", slow)
    seen: list[list[str]] = []
    threads = [threading.Thread(target=lambda: seen.append(reg.names())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    REGISTRIES.remove(reg)
    assert seen == [["a"]] * 4


def test_a_group_that_fails_in_its_thread_lets_the_others_rows_land_first() -> None:
    from suite.sweep.runner import _group_rows

    def rows_of(task: str, seed: int) -> list[dict[str, object]]:
        if task == "bad":
            raise RuntimeError("this group failed")
        return [{"task": task}]

    got: list[object] = []
    with pytest.raises(RuntimeError, match="this group failed"):
        for row in _group_rows([("a", 0), ("bad", 0), ("c", 0)], 3, rows_of):  # type: ignore[arg-type]
            got.append(row)
    assert sorted(r["task"] for r in got) == ["a", "c"]  # type: ignore[index]
