"""pciplan.plan and pciplan.plan_xml against the command line, and their errors."""

import json
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import pciplan
from conftest import as_item, compact, run_cli


def test_version_is_the_crates(repo):
    cargo = (repo / "Cargo.toml").read_text()
    version = next(
        line.split('"')[1] for line in cargo.splitlines() if line.startswith("version")
    )
    assert pciplan.__version__ == version


def test_wheel_version_is_the_crates():
    from importlib.metadata import version

    assert version("pciplan") == pciplan.__version__


def test_plan_equals_cli_json(cli, repo):
    path = repo / "examples" / "mixed.json"
    out = run_cli(cli, "plan", str(path), "--format", "json")
    assert out.returncode == 0, out.stderr
    want = json.loads(out.stdout)
    request = json.loads(path.read_text())
    got = pciplan.plan(request)
    assert got == want
    assert compact(got) == compact(want)


def test_plan_takes_json_text_and_bytes(repo):
    text = (repo / "examples" / "mixed.json").read_text()
    as_dict = pciplan.plan(json.loads(text))
    assert pciplan.plan(text) == as_dict
    assert pciplan.plan(text.encode()) == as_dict


def test_plan_generated_guests_equal_cli(cli, make_fleet):
    # Held-out guests: a seed no other test uses.
    path = make_fleet("mixed", 40, 9091)
    for line in path.read_text().splitlines():
        request = as_item(line)
        out = run_cli(cli, "plan", "-", "--format", "json", stdin=line)
        if out.returncode == 0:
            assert pciplan.plan(request) == json.loads(out.stdout)
        else:
            with pytest.raises(pciplan.Error) as e:
                pciplan.plan(request)
            assert str(e.value) in out.stderr


def test_infeasible_has_causes(cli, repo):
    path = repo / "examples" / "too-many-off.json"
    with pytest.raises(pciplan.Infeasible) as e:
        pciplan.plan(path.read_text())
    err = e.value
    assert isinstance(err, pciplan.Error)
    assert err.rule == "R-ROOT"
    assert err.causes and set(err.causes[0]) == {
        "rule", "message", "devices", "need", "have", "hints"}
    cause = err.causes[0]
    assert cause["need"] > cause["have"]
    assert len(cause["devices"]) == cause["need"]
    assert cause["hints"]
    out = run_cli(cli, "plan", str(path))
    assert out.returncode == 1
    assert str(err) in out.stderr


def test_invalid_input_names_the_field():
    with pytest.raises(pciplan.InvalidInput) as e:
        pciplan.plan({"devices": [{"id": "x", "model": "frobnicator"}]})
    assert e.value.field == "devices[0].model"
    assert isinstance(e.value, ValueError) and isinstance(e.value, pciplan.Error)
    with pytest.raises(pciplan.InvalidInput) as e:
        pciplan.plan({"devices": [{"id": "net0", "modle": "e1000"}]})
    assert "devices[0]" in str(e.value)


def test_broken_pins_are_listed_as_violations():
    request = {"devices": [
        {"id": "a", "model": "virtio-net-pci", "address": {"bus": "pcie.0", "slot": 3, "function": 0}},
        {"id": "b", "model": "virtio-net-pci", "address": {"bus": "pcie.0", "slot": 3, "function": 0}},
    ]}
    with pytest.raises(pciplan.InvalidInput) as e:
        pciplan.plan(request)
    assert e.value.violations
    v = e.value.violations[0]
    assert set(v) == {"device", "address", "rule", "message"}
    assert v["address"].startswith("pcie.0:03")


def test_exceptions_pickle_with_their_data(repo):
    with pytest.raises(pciplan.Infeasible) as e:
        pciplan.plan((repo / "examples" / "too-many-off.json").read_text())
    back = pickle.loads(pickle.dumps(e.value))
    assert type(back) is pciplan.Infeasible
    assert back.causes == e.value.causes and str(back) == str(e.value)
    inv = pickle.loads(pickle.dumps(pciplan.InvalidInput("m", "f", [{"rule": "R-PIN"}])))
    assert (inv.field, inv.violations) == ("f", [{"rule": "R-PIN"}])


@pytest.mark.parametrize("bad", [5, None, 1.5, [1, 2], ("a",), object(), {1, 2}])
def test_plan_wrong_python_types_raise_type_error(bad):
    with pytest.raises(TypeError):
        pciplan.plan(bad)


@pytest.mark.parametrize("bad", [
    "", "not json", "{", "null", "5", '{"devices": 5}', '{"devices": [{"id": 1}]}',
    b"\xff\xfe", "{\"name\": \"\ud800\"}",
    "[" * 100_000 + "]" * 100_000,
])
def test_plan_malformed_text_raises_invalid_input(bad):
    with pytest.raises(pciplan.InvalidInput):
        pciplan.plan(bad)


def test_plan_unserializable_dicts_raise_invalid_input():
    nested = {}
    cur = nested
    for _ in range(100_000):
        cur["x"] = {}
        cur = cur["x"]
    circular = {"devices": []}
    circular["devices"].append(circular)
    for bad in [
        {"devices": [{"id": "a", "model": {1, 2}}]},
        {"policy": {"spare_ports": float("nan")}},
        {"\ud800": 1},
        circular,
        nested,
        {1: "int keys are not a request"},
    ]:
        with pytest.raises(pciplan.InvalidInput):
            pciplan.plan(bad)


def test_plan_huge_input_raises():
    with pytest.raises(pciplan.InvalidInput) as e:
        pciplan.plan('{"name": "' + "x" * (20 << 20) + '"}')
    assert "limit" in str(e.value)
    huge = {"devices": [{"id": f"d{i}", "model": "virtio-net-pci"} for i in range(400_000)]}
    with pytest.raises(pciplan.InvalidInput):
        pciplan.plan(huge)
    with pytest.raises(pciplan.InvalidInput):
        pciplan.plan_xml("<domain>" + " " * (20 << 20) + "</domain>")


EXISTING = {
    "name": "web-07",
    "policy": {"hotplug_off": "auto"},
    "devices": [
        {"id": "net0", "model": "virtio-net-pci", "hotplug": "off",
         "address": {"bus": "pci.1", "slot": 0}},
        {"id": "disk0", "model": "virtio-blk-pci", "address": {"bus": "pci.2", "slot": 0}},
        {"id": "nic1", "model": "e1000", "hotplug": "off", "address": {"bus": "pci.4", "slot": 1}},
    ],
    "controllers": [
        {"id": "pci.1", "model": "pcie-root-port", "chassis": 1,
         "address": {"bus": "pcie.0", "slot": 2, "function": 0}},
        {"id": "pci.2", "model": "pcie-root-port", "chassis": 2,
         "address": {"bus": "pcie.0", "slot": 2, "function": 1}},
        {"id": "pci.3", "model": "pcie-root-port", "chassis": 3,
         "address": {"bus": "pcie.0", "slot": 2, "function": 2}},
        {"id": "pci.4", "model": "pcie-pci-bridge", "address": {"bus": "pci.3", "slot": 0}},
    ],
}


def test_adopt_keeps_what_it_can_and_equals_cli(cli, tmp_path):
    # Without adopt the pins hold and the policy cannot be met there.
    with pytest.raises(pciplan.InvalidInput):
        pciplan.plan(EXISTING)
    p = pciplan.plan(EXISTING, adopt=True)
    assert p["optimal"] and p["guest_visible_changes"] == 1
    kinds = [(c["id"], c["change"]) for c in p["changes"]]
    assert kinds == [("nic1", "moved"), ("pci.1", "port_hotplug")]
    moved = p["changes"][0]
    assert moved["linux_name"]["from"] == "enp4s1" and "R-BRIDGE" in moved["why"]
    path = tmp_path / "web-07.json"
    path.write_text(json.dumps(EXISTING))
    out = run_cli(cli, "plan", str(path), "--adopt")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == p
    assert "1 guest-visible change" in out.stderr


def test_adopt_in_batch_and_xml(cli, repo):
    rows = list(pciplan.batch([EXISTING, {"devices": [{"id": "x", "model": "nope"}]}], adopt=True))
    assert rows[0]["ok"] and rows[0]["plan"]["guest_visible_changes"] == 1
    assert not rows[1]["ok"] and rows[1]["error"]["kind"] == "invalid"
    # A planned domain adopted under its own policy comes back as it is.
    planned = pciplan.plan_xml((repo / "examples" / "web-01.xml").read_text())
    assert pciplan.plan_xml(planned, adopt=True) == planned


def test_plan_xml_equals_cli(cli, repo):
    path = repo / "examples" / "web-01.xml"
    out = run_cli(cli, "plan", str(path), "--format", "libvirt")
    assert out.returncode == 0, out.stderr
    assert pciplan.plan_xml(path.read_text()) == out.stdout
    assert pciplan.plan_xml(path.read_bytes()) == out.stdout


def test_plan_xml_keywords_equal_cli_flags(cli, repo):
    path = repo / "examples" / "web-01.xml"
    xml = path.read_text()
    aliases = [a.split("'")[1] for a in xml.split("<alias name=")[1:]]
    assert aliases, "the example names its devices"
    flags = ["--default-hotplug", "off", "--spare-ports", "2",
             "--hotplug-off-strategy", "auto", "--hotplug", f"{aliases[0]}=on"]
    out = run_cli(cli, "plan", str(path), "--format", "libvirt", *flags)
    assert out.returncode == 0, out.stderr
    got = pciplan.plan_xml(xml, default_hotplug="off", spare_ports=2,
                           hotplug_off="auto", hotplug={aliases[0]: "on"})
    assert got == out.stdout


@pytest.mark.parametrize("kwargs, error", [
    ({"default_hotplug": "maybe"}, pciplan.InvalidInput),
    ({"default_hotplug": 1}, TypeError),
    ({"hotplug_off": "nowhere"}, pciplan.InvalidInput),
    ({"spare_ports": -1}, pciplan.InvalidInput),
    ({"spare_ports": 1 << 40}, pciplan.InvalidInput),
    ({"spare_ports": "2"}, TypeError),
    ({"spare_ports": True}, TypeError),
    ({"hotplug": {"ua-net0": "sometimes"}}, pciplan.InvalidInput),
    ({"hotplug": {"": "on"}}, pciplan.InvalidInput),
    ({"hotplug": {1: "on"}}, TypeError),
    ({"hotplug": ["ua-net0=off"]}, TypeError),
])
def test_plan_xml_bad_keywords(repo, kwargs, error):
    xml = (repo / "examples" / "web-01.xml").read_text()
    with pytest.raises(error):
        pciplan.plan_xml(xml, **kwargs)


@pytest.mark.parametrize("bad", [
    "", "not xml", "<domain>", "<domain></nope>", b"\x00\xff<domain/>",
    "<domain type='kvm'><devices><interface type='network'><address type='pci' bus='x'/></interface></devices></domain>",
])
def test_plan_xml_malformed_raises_invalid_input(bad):
    with pytest.raises(pciplan.Error):
        pciplan.plan_xml(bad)


def test_plan_xml_wrong_type():
    for bad in (None, 5, {"domain": 1}):
        with pytest.raises(TypeError):
            pciplan.plan_xml(bad)


def test_plan_from_threads_equals_serial(make_fleet):
    requests = [as_item(l) for l in make_fleet("mixed", 200, 77).read_text().splitlines()]

    def safe(r):
        try:
            return pciplan.plan(r)
        except pciplan.Error as e:
            return type(e).__name__ + str(e)

    serial = [safe(r) for r in requests]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(safe, requests)) == serial


def test_gil_is_released_while_planning(make_fleet):
    # While the main thread waits on planning, another Python thread must run.
    requests = [as_item(l) for l in make_fleet("mixed", 3000, 5).read_text().splitlines()]
    ticks = 0
    stop = threading.Event()

    def tick():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=tick)
    t.start()
    try:
        before = ticks
        n = sum(1 for _ in pciplan.batch(requests))
        assert n == len(requests)
        assert ticks > before
    finally:
        stop.set()
        t.join()


def test_docstrings_show_the_uses():
    import doctest

    assert "placement service" in pciplan.__doc__
    assert "what-if" in pciplan.__doc__
    assert "Infeasible" in pciplan.plan.__doc__ and ">>>" in pciplan.plan.__doc__
    assert "what-if" in pciplan.batch.__doc__
    assert "as_json=True" in pciplan.batch.__doc__ and "writelines" in pciplan.batch.__doc__
    assert "adopt=True" in pciplan.plan_xml.__doc__
    # The plan() example runs as written.
    result = doctest.run_docstring_examples(pciplan.plan, {"pciplan": pciplan}, verbose=False)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(pciplan.plan, "plan", globs={"pciplan": pciplan}):
        runner.run(test)
    assert runner.failures == 0 and result is None


def test_stubs_and_py_typed_are_installed():
    from pathlib import Path

    pkg = Path(pciplan.__file__).parent
    assert (pkg / "py.typed").exists()
    stub = (pkg / "__init__.pyi").read_text()
    for name in ("def plan(", "def plan_xml(", "def batch(", "class Infeasible", "causes",
                 "as_json: Literal[True]"):
        assert name in stub
