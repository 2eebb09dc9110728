"""mayastor-shell without a daemon: the tree is built, and an unreachable daemon is one error line
with exit status 1 (the tour against a real daemon runs in the VM: tests/kernel/test_shell_tour.py)."""

import io


from mayastor.shell.main import build, main, run


def test_tree_and_unreachable_daemon(capfd):
    buf = io.StringIO()
    shell, root = build("127.0.0.1:1", buf)
    assert sorted(c.name for c in root.children) == ["nexus", "nvmet", "pools"]
    assert run(shell, root, ["ls /pools"]) == 1
    lines = [x for x in buf.getvalue().splitlines() if x.strip()]
    assert len(lines) == 1 and "UNAVAILABLE" in lines[0]
    assert main(["-b", "127.0.0.1:1", "ls /"]) == 1
