"""pciplan.batch against `pciplan batch`, its order, its errors and its memory."""

import gc
import json

import pytest

import pciplan
from conftest import as_item, compact, run_cli


def cli_lines(cli, path):
    out = run_cli(cli, "batch", str(path), "--quiet")
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def assert_same(results, lines):
    assert len(results) == len(lines)
    for got, line in zip(results, lines):
        assert got == json.loads(line)
        # Byte for byte: the dict written back compactly is the command line's line.
        assert compact(got) == line


def test_batch_equals_cli_on_a_generated_fleet(cli, make_fleet):
    path = make_fleet("mixed", 3000, 3)
    requests = [as_item(l) for l in path.read_text().splitlines()]
    assert sum(isinstance(r, dict) for r in requests) > 2500
    assert_same(list(pciplan.batch(requests)), cli_lines(cli, path))


def test_batch_equals_cli_past_the_kept_words(cli, tmp_path):
    # The result builder keeps the strings of models and bus names (512 met last, up to
    # 4,096 in all): 6,000 guests with ports of their own names, each holding a device,
    # and devices named after their guest, are more words than it keeps.
    lines = []
    for i in range(6000):
        port = f"port{i}-{'x' * (i % 23)}"
        request = {
            "name": f"g{i}",
            "devices": [
                {"id": f"nic{i}", "model": "e1000e", "hotplug": "any",
                 "address": {"bus": port, "slot": 0, "function": 0}},
                {"id": "disk", "model": "virtio-blk-pci", "hotplug": "any"},
            ],
            "controllers": [
                {"id": port, "model": "pcie-root-port", "hotplug": i % 2 == 0,
                 "address": {"bus": "pcie.0", "slot": 2 + i % 20, "function": 0}},
            ],
        }
        lines.append(compact(request))
    path = tmp_path / "words.jsonl"
    path.write_text("\n".join(lines) + "\n")
    expected = cli_lines(cli, path)
    assert sum('"ok":true' in line for line in expected) == 6000
    assert_same(list(pciplan.batch(lines)), expected)
    assert_same(list(pciplan.batch([json.loads(l) for l in lines])), expected)


def test_batch_of_json_text_and_open_file_equals_cli(cli, make_fleet):
    path = make_fleet("templated", 5000, 11)
    lines = cli_lines(cli, path)
    assert_same(list(pciplan.batch(path.read_text().splitlines())), lines)
    with open(path) as f:
        assert_same(list(pciplan.batch(f)), lines)
    with open(path, "rb") as f:
        assert_same(list(pciplan.batch(f)), lines)


def test_batch_small_chunks_keep_order(cli, make_fleet):
    path = make_fleet("mixed", 500, 21)
    lines = cli_lines(cli, path)
    gen = (as_item(l) for l in path.read_text().splitlines())
    assert_same(list(pciplan.batch(gen, chunk=7)), lines)
    assert_same(list(pciplan.batch(path.read_text().splitlines(), chunk=1)), lines)


def test_batch_bad_lines_equal_cli(cli, tmp_path, repo):
    lines = [
        '{"name":"ok","devices":[{"id":"net0","model":"virtio-net-pci"}]}',
        "not json",
        "",
        '{"name":"typo","devices":[{"id":"x","modle":"e1000"}]}',
        (repo / "examples" / "too-many-off.json").read_text().replace("\n", " "),
        '{"name":"pins","devices":[{"id":"a","model":"e1000","address":{"bus":"pcie.0","slot":40,"function":0}}]}',
        '{"name":"unicode \u00e9\u4e2d","devices":[]}',
        '{"devices":[]}\r',
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert_same(list(pciplan.batch(lines)), cli_lines(cli, path))


def test_batch_items_that_are_not_requests_give_invalid_results():
    items = [{"name": "a", "devices": []}, 5, None, {"name": "s", "x": {1}},
             {"policy": {"spare_ports": float("inf")}}, b"\xff", "\ud800",
             {"name": "b", "devices": []}]
    out = list(pciplan.batch(items))
    assert [o["line"] for o in out] == list(range(1, 9))
    assert [o["ok"] for o in out] == [True] + [False] * 6 + [True]
    for o in out[1:7]:
        assert o["error"]["kind"] == "invalid"
        assert o["error"]["message"].startswith(f"line {o['line']}: ")
    assert "int" in out[1]["error"]["message"]
    assert out[3]["name"] == "s"
    assert out[7]["name"] == "b"


def test_batch_takes_an_iterable_not_one_request():
    for bad in ('{"devices":[]}', b'{"devices":[]}', {"devices": []}, 5, None):
        with pytest.raises(TypeError):
            pciplan.batch(bad)
    assert list(pciplan.batch([])) == []
    assert list(pciplan.batch(iter(()))) == []


def test_batch_delivers_results_before_the_iterable_raises():
    def gen():
        for i in range(10):
            yield {"name": f"g{i}", "devices": []}
        raise KeyError("the source broke")

    it = pciplan.batch(gen(), chunk=4)
    got = []
    with pytest.raises(KeyError, match="the source broke"):
        for o in it:
            got.append(o["name"])
    assert got == [f"g{i}" for i in range(10)]


def test_batch_exception_from_a_request_comes_after_the_results_before_it():
    class Boom(dict):
        def items(self):
            raise KeyError("boom")

    got = []
    with pytest.raises(KeyError, match="boom"):
        for o in pciplan.batch([{"name": "a", "devices": []}, Boom(devices=[]),
                                {"name": "b", "devices": []}]):
            got.append(o)
    # The request that raised has no result of its own (there was a stray 'empty line').
    assert [(o["line"], o["name"], o["ok"]) for o in got] == [(1, "a", True)]


def test_batch_can_be_abandoned():
    def endless():
        i = 0
        while True:
            i += 1
            yield {"name": f"g{i}", "devices": [{"id": "n", "model": "e1000"}]}

    for _ in range(5):
        it = pciplan.batch(endless(), chunk=64)
        first = [next(it) for _ in range(100)]
        assert [o["line"] for o in first] == list(range(1, 101))
        del it
        gc.collect()


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_batch_over_a_generator_of_100000_keeps_memory_flat_and_order():
    templates = [
        [{"id": f"d{j}", "model": m, "hotplug": h}
         for j, (m, h) in enumerate(zip(["virtio-net-pci", "virtio-blk-pci", "e1000", "vfio-pci"] * k,
                                         ["off", "on", "any", "on"] * k))]
        for k in range(1, 9)
    ]

    def requests():
        for i in range(100_000):
            yield {"name": f"guest-{i}", "policy": {"spare_ports": i % 3},
                   "devices": templates[i % len(templates)]}

    seen = 0
    samples = []
    for o in pciplan.batch(requests()):
        assert o["line"] == seen + 1 and o["name"] == f"guest-{seen}", o
        assert o["ok"], o
        seen += 1
        if seen in (20_000, 50_000, 100_000):
            samples.append(rss_kib())
    assert seen == 100_000
    # A few chunks in flight, whatever the fleet's length: no growth past warm-up.
    assert samples[-1] - samples[0] < 40 * 1024, samples


def test_batch_results_are_fresh_objects():
    out = list(pciplan.batch([{"name": "a", "devices": []}] * 3))
    out[0]["plan"]["devices"].append("changed")
    assert out[1]["plan"]["devices"] == []


def test_batch_as_json_gives_the_cli_lines_byte_for_byte(cli, make_fleet, tmp_path):
    path = make_fleet("mixed", 3000, 5)
    text = path.read_text()
    out = run_cli(cli, "batch", str(path), "--quiet")
    assert out.returncode == 0, out.stderr
    want = out.stdout.splitlines(keepends=True)
    lines = text.splitlines()
    dicts = [as_item(l) for l in lines]
    assert sum(isinstance(r, dict) for r in dicts) > 2500
    for items in (lines, dicts, iter(dicts)):
        got = list(pciplan.batch(items, as_json=True, chunk=100))
        assert all(isinstance(g, str) for g in got)
        assert got == want
    # The documented recipe: the plans of a fleet to a file are the command line's output.
    plans = tmp_path / "plans.jsonl"
    with open(path) as src, open(plans, "w") as dst:
        dst.writelines(pciplan.batch(src, as_json=True))
    assert plans.read_text() == out.stdout


def test_batch_as_json_over_bad_items_is_the_dict_results_written(cli, tmp_path):
    lines = [
        '{"name":"ok","devices":[{"id":"net0","model":"virtio-net-pci"}]}',
        "not json",
        '{"name":"typo","devices":[{"id":"x","modle":"e1000"}]}',
        '{"name":"unicode \u00e9\u4e2d","devices":[]}',
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert list(pciplan.batch(lines, as_json=True)) == cli_lines_kept(cli, path)
    # Items that are not requests, which the command line never sees: their lines are
    # the dicts `as_json=False` gives, written compactly.
    items = [{"name": "a", "devices": []}, 5, None, {"name": "s", "x": {1}}, b"\xff",
             "\ud800", {"name": "b\u00e9", "devices": []}]
    dicts = list(pciplan.batch(items))
    texts = list(pciplan.batch(items, as_json=True))
    assert [compact(d) + "\n" for d in dicts] == texts
    assert [json.loads(t)["ok"] for t in texts] == [True] + [False] * 5 + [True]


def test_batch_as_json_adopts_as_the_cli_does(cli, make_fleet):
    path = make_fleet("existing", 400, 9)
    out = run_cli(cli, "batch", str(path), "--quiet", "--adopt")
    assert out.returncode == 0, out.stderr
    got = list(pciplan.batch(path.read_text().splitlines(), adopt=True, as_json=True))
    assert got == out.stdout.splitlines(keepends=True)
    assert any('"changes":[{' in line for line in got)


def cli_lines_kept(cli, path):
    out = run_cli(cli, "batch", str(path), "--quiet")
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines(keepends=True)


def test_batch_takes_json_text_over_several_lines():
    req = {"name": "pretty", "devices": [{"id": "net0", "model": "virtio-net-pci",
                                          "hotplug": "off"}, {"id": "d", "model": "nvme"}]}
    items = [json.dumps(req, indent=2), json.dumps(req) + "\n", req,
             json.dumps(req, indent=1).encode(), '{"name":\n"x",\n"devices": "nope"}']
    out = list(pciplan.batch(items))
    assert [o["line"] for o in out] == [1, 2, 3, 4, 5]
    for o in out[1:4]:
        assert o == {**out[0], "line": o["line"]}
    assert out[0]["ok"] and out[0]["plan"]["devices"][0]["bus"] == "pcie.0"
    assert out[4]["ok"] is False and out[4]["error"]["kind"] == "invalid"


def test_batch_as_json_over_a_generator_keeps_memory_flat_and_order():
    def requests():
        for i in range(100_000):
            yield {"name": f"g{i}", "devices": [
                {"id": f"d{j}", "model": "virtio-net-pci", "hotplug": ("off", "on", "any")[j % 3]}
                for j in range(1 + i % 12)]}

    seen = 0
    samples = []
    for line in pciplan.batch(requests(), as_json=True):
        assert line.startswith(f'{{"line":{seen + 1},"name":"g{seen}","ok":true,'), line
        assert line.endswith("}\n")
        seen += 1
        if seen in (20_000, 50_000, 100_000):
            samples.append(rss_kib())
    assert seen == 100_000
    assert samples[-1] - samples[0] < 40 * 1024, samples
