from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.spec import (
    VARIANTS,
    InterpreterSpec,
    Plan,
    available_plans,
    load_interpreter,
    load_plan,
    spec_differences,
)

SHA = "a" * 64


def write_spec(path: Path, name: str, flags: str = "[]", extra: str = "", sha: str = SHA) -> Path:
    path.write_text(
        f'[interpreter]\nname = "{name}"\nversion = "3.13.15"\nurl = "https://example.invalid/P.tar.xz"\n'
        f'sha256 = "{sha}"\nconfigure_flags = {flags}\n{extra}'
    )
    return path


def test_shipped_specs_are_a_matched_pair() -> None:
    gil, ft = load_interpreter("cpython-3.13"), load_interpreter("cpython-3.13t")
    assert not gil.free_threaded and ft.free_threaded
    assert spec_differences(gil, ft) == []
    assert gil.flags_for("release") == ("--enable-optimizations", "--with-lto")
    assert ft.flags_for("fast") == ("--disable-gil",)


def test_unknown_spec_names_the_available_ones() -> None:
    with pytest.raises(
        SpecError, match=r"interpreter spec 'cpython-3.12t' not found; available: cpython-3.13, cpython-3.13t"
    ):
        load_interpreter("cpython-3.12t")


def test_unknown_key_is_named_with_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "x.toml", "x", extra="optimise = true\n")
    with pytest.raises(SpecError, match=r"x.toml: unknown key 'interpreter.optimise'"):
        InterpreterSpec.from_toml(path)


def test_bad_checksum_format_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "x.toml", "x", sha="XYZ")
    with pytest.raises(SpecError, match="64 lowercase hex digits, got 'XYZ'"):
        InterpreterSpec.from_toml(path)


def test_differences_besides_disable_gil_are_listed(tmp_path: Path) -> None:
    gil = InterpreterSpec.from_toml(write_spec(tmp_path / "a.toml", "a", '["--with-pydebug"]'))
    ft = InterpreterSpec.from_toml(write_spec(tmp_path / "b.toml", "b", '["--disable-gil"]'))
    diffs = spec_differences(gil, ft)
    assert diffs == ["configure_flags besides --disable-gil: ['--with-pydebug'] != []"]


def test_swapped_roles_are_a_difference() -> None:
    gil, ft = load_interpreter("cpython-3.13"), load_interpreter("cpython-3.13t")
    diffs = spec_differences(ft, gil)
    assert any("used as the GIL build" in d for d in diffs)


def test_shipped_plans_load() -> None:
    assert {"smoke", "quick"} <= set(available_plans())
    for name in available_plans():
        plan = load_plan(name)
        assert set(plan.variants) <= set(VARIANTS)


def test_plan_rejects_unknown_variant(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "lab" / "plans" / "smoke.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(text.replace('variants = ["sync", "async", "bridged"]', 'variants = ["sync", "threads"]'))
    with pytest.raises(SpecError, match="unknown variant 'threads'; accepted: sync, async, bridged, sync-on-asgi"):
        Plan.from_toml(path)


def test_plan_rejects_unbounded_duration(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "lab" / "plans" / "smoke.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(text.replace("http_duration = 0.8", "http_duration = 3600.0"))
    with pytest.raises(SpecError, match="capped at 600 s"):
        Plan.from_toml(path)


def test_plan_remeasure_flag_is_a_boolean(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "lab" / "plans" / "smoke.toml").read_text()
    path = tmp_path / "p.toml"
    assert Plan.from_toml(Path(__file__).parent.parent / "lab" / "plans" / "smoke.toml").remeasure_noisy
    path.write_text(text + "remeasure_noisy = false\n")
    assert not Plan.from_toml(path).remeasure_noisy
    path.write_text(text + 'remeasure_noisy = "no"\n')
    with pytest.raises(SpecError, match="'plan.remeasure_noisy' must be true or false, got 'no'"):
        Plan.from_toml(path)
    # The default plan keeps its 20-minute budget: noisy points stay flagged, not re-measured.
    assert not load_plan("quick").remeasure_noisy and load_plan("axes").remeasure_noisy


def test_plan_stagger_flag_is_a_boolean(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "lab" / "plans" / "smoke.toml").read_text()
    path = tmp_path / "p.toml"
    assert load_plan("async-pays").http_stagger  # not said: spread, the default
    path.write_text(text + "http_stagger = false\n")
    assert not Plan.from_toml(path).http_stagger
    path.write_text(text + 'http_stagger = "yes"\n')
    with pytest.raises(SpecError, match="'plan.http_stagger' must be true or false, got 'yes'"):
        Plan.from_toml(path)


def test_unknown_plan_lists_available() -> None:
    with pytest.raises(SpecError, match="plan 'nope' not found; available: .*quick.*smoke"):
        load_plan("nope")


def test_shipped_mixes_load_and_sweep() -> None:
    from lab.spec import available_mixes, load_mix

    names = available_mixes()
    for expected in ("cpu-heavy", "orm-crud", "template-page", "billing", "io-sequential", "io-fanout", "io-sweep"):
        assert expected in names
    sweep = load_mix("io-sweep")
    points = sweep.points()
    assert [p.label for p in points][:3] == ["io-sweep@latency=0", "io-sweep@latency=2", "io-sweep@latency=5"]
    assert points[-1].query == "latency=500" and points[-1].needs_upstream
    assert [p.label for p in sweep.points((5,))] == ["io-sweep@latency=5"]
    assert load_mix("orm-n-plus-1").points()[0].query == "mode=lazy&n=20"


def test_unknown_mix_lists_available() -> None:
    from lab.spec import load_mix

    with pytest.raises(SpecError, match="mix 'nope' not found; available: billing, cpu-heavy"):
        load_mix("nope")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{ latency = -5 }", "latency=-5 is out of range; accepted: integers 0..10000"),
        ('{ latency = "fast" }', "latency='fast' is out of range"),
        ("{ colour = 1 }", "unknown parameter 'colour' for endpoint 'billing'; accepted: account, latency, client"),
        ('{ client = "requests" }', "client='requests' is not accepted; accepted: httpx, aiohttp"),
    ],
)
def test_bad_mix_parameters(tmp_path: Path, params: str, message: str) -> None:
    from lab.spec import Mix

    path = tmp_path / "m.toml"
    path.write_text(f'[mix]\nname = "m"\ndescription = "d"\nendpoint = "billing"\nparams = {params}\n')
    with pytest.raises(SpecError, match=message):
        Mix.from_toml(path)


def _smoke_with(tmp_path: Path, extra: str) -> Path:
    text = (Path(__file__).parent.parent / "lab" / "plans" / "smoke.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(text.replace("[plan]\n", "[plan]\n" + extra + "\n", 1))
    return path


def test_per_mix_variants_and_sweeps_narrow_the_cells(tmp_path: Path) -> None:
    from lab.cells import cells_of

    path = _smoke_with(
        tmp_path,
        'mixes = ["template-page", "io-sweep"]\nsweep_overrides = { io-sweep = [5, 500] }\n'
        'mix_variants = { io-sweep = ["sync", "async"] }',
    )
    text = path.read_text().replace('mixes = ["template-page", "billing"]\n', "")
    path.write_text(text)
    plan = Plan.from_toml(path)
    http = [c for c in cells_of(plan) if c.tier == "http"]
    sweep = [c for c in http if c.point.mix == "io-sweep"]
    assert sorted({c.point.label for c in sweep}) == ["io-sweep@latency=5", "io-sweep@latency=500"]
    assert {c.variant for c in sweep} == {"sync", "async"}
    assert {c.variant for c in http if c.point.mix == "template-page"} == {"sync", "async", "bridged"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('mix_variants = { orm-reads = ["sync"] }', "names mix 'orm-reads', which the plan does not run"),
        ('mix_variants = { billing = ["sync-on-asgi"] }', "names 'sync-on-asgi', not a plan variant"),
        ("sweep_overrides = [1, 2]", "'plan.sweep_overrides' must be a table"),
    ],
)
def test_per_mix_tables_are_checked(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Plan.from_toml(_smoke_with(tmp_path, extra))
