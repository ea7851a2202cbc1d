"""Shared pytest hooks: the fault-injection suite's tally (tests/test_faults.py)."""


def pytest_terminal_summary(terminalreporter):
    """At the end of a run: how many faults were injected (``record_property("fault", ...)``) and how many
    of them the package survived (their test passed). Works under xdist: user properties travel with
    the reports from the workers."""
    injected, survived = 0, 0
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            faults = sum(1 for key, _ in getattr(report, "user_properties", []) if key == "fault")
            injected += faults
            survived += faults if outcome == "passed" else 0
    if injected:
        terminalreporter.write_sep("-", f"fault injection: {injected} faults injected, {survived} survived")
