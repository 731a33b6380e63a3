"""Dicts are read, and plans built, without JSON text in between: the results must be
exactly those of the JSON text, whatever Python hands over."""

import enum
import json
import math
from collections import OrderedDict

import pytest

import pciplan

NET = {"id": "net0", "model": "virtio-net-pci", "hotplug": "off"}
DISK = {"id": "disk0", "model": "virtio-blk-pci"}


class Color(enum.IntEnum):
    TWO = 2


class Word(str, enum.Enum):
    OFF = "off"


class Key(str):
    pass


def fresh(word):
    """`word` as a new str object (not the interned constant)."""
    return "".join(list(word))


def nested(depth):
    v = "leaf"
    for _ in range(depth):
        v = {"x": v}
    return v


# Each is a request as Python may hand it over; most read straight, the rest must take the
# JSON text way and end exactly as their text does (planned, or the same error).
ODD = [
    {"name": "plain", "devices": [NET, DISK]},
    {"name": "tuple", "devices": (NET, DISK)},
    {"name": "ordered", "devices": [OrderedDict(NET), DISK]},
    {"name": "bool count", "policy": {"spare_ports": True}, "devices": [DISK]},
    {"name": "float count", "policy": {"spare_ports": 1.0}, "devices": [DISK]},
    {"name": "negative", "policy": {"spare_ports": -1}, "devices": [DISK]},
    {"name": "huge int", "policy": {"spare_ports": 1 << 70}, "devices": [DISK]},
    {"name": "int enum", "policy": {"spare_ports": Color.TWO}, "devices": [DISK]},
    {"name": "str enum", "devices": [{**DISK, "hotplug": Word.OFF}]},
    {"name": "nan", "policy": {"spare_ports": math.nan}, "devices": [DISK]},
    {"name": "null name", "devices": [DISK]} | {"name": None},
    {"name": "null field", "policy": None, "devices": [DISK]},
    {"name": "int key", 1: "x", "devices": [DISK]},
    {"name": "unknown", "devices": [DISK], "colour": nested(100)},
    {"name": "unknown device field", "devices": [{**DISK, "colour": [1, 2.5, None]}]},
    {"name": "bad enum", "devices": [{**DISK, "hotplug": "sometimes"}]},
    {"name": "enum as list", "devices": [{**DISK, "hotplug": ["off"]}]},
    {"name": "surrogate \udc80", "devices": [DISK]},
    {"name": "x" * (4 << 20), "devices": [DISK]},
    {"name": "é ☃ 𝄞", "devices": [{**NET, "id": "net-é"}]},
    {"name": "pinned", "devices": [{**NET, "address": {"bus": "pcie.0", "slot": 3}}]},
    {"name": "deep", "devices": [DISK], "policy": nested(200)},
    # Devices of the shape the fast reader takes, and just off it.
    {"name": "device nulls", "devices": [{**DISK, "hotplug": None, "group": None,
                                          "numa_node": None}, NET]},
    {"name": "device group and node", "devices": [
        {"id": "gpu0", "model": "vfio-pci", "group": "g1", "numa_node": 1},
        {"id": "aud0", "model": "vfio-pci", "group": "g1", "numa_node": 1}, DISK]},
    {"name": "node as bool", "devices": [{**DISK, "numa_node": True}]},
    {"name": "node negative", "devices": [{**DISK, "numa_node": -1}]},
    {"name": "node huge", "devices": [{**DISK, "numa_node": 1 << 40}]},
    {"name": "node as float", "devices": [{**DISK, "numa_node": 1.0}]},
    {"name": "group as int", "devices": [{**DISK, "group": 5}]},
    {"name": "id as int", "devices": [{"id": 5, "model": "e1000"}]},
    {"name": "id as str enum", "devices": [{"id": Word.OFF, "model": "e1000"}]},
    {"name": "model missing", "devices": [{"id": "x"}, DISK]},
    {"name": "device int key", "devices": [{**DISK, 3: "x"}]},
    {"name": "device bus kind", "devices": [{**DISK, "bus_kind": "pci"}, NET]},
    {"name": "device not a dict", "devices": [DISK, ["id", "x"]]},
    {"name": "devices null", "devices": None},
    {"name": "devices a dict", "devices": {"id": "x", "model": "e1000"}},
    {"name": "hotplug upper", "devices": [{**DISK, "hotplug": "OFF"}]},
    {"name": "empty id", "devices": [{**DISK, "id": ""}]},
    # The device reader knows a request's keys by address after their first device.
    {"name": "keys made at run time", "devices": [
        DISK, {fresh("id"): "n1", fresh("model"): "e1000e", fresh("hotplug"): "any"}, NET]},
    {"name": "more key objects than remembered", "devices": [
        {fresh("id"): f"d{i}", fresh("model"): "virtio-blk-pci", fresh("hotplug"): "any",
         fresh("group"): None, fresh("numa_node"): None} for i in range(8)]},
    {"name": "key str subclass", "devices": [DISK, {Key("id"): "n1", "model": "e1000e"}]},
    {"name": "keys reordered", "devices": [
        NET, {"model": "e1000e", "hotplug": "any", "id": "n2"}, DISK]},
    {"machine": "pc", "devices": [{**DISK, "hotplug": "any"}], "root_hotplug": False,
     "name": "pc root hotplug", "firmware": "bios"},
]


def compact(request):
    """The compact text a dict's errors point into (their columns)."""
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def outcome(request):
    """The plan, or the error's class and message."""
    try:
        return ("ok", pciplan.plan(request))
    except pciplan.Error as e:
        return (type(e).__name__, str(e))


@pytest.mark.parametrize("request_", ODD, ids=lambda r: str(r.get("name"))[:20])
def test_a_dict_plans_exactly_as_its_json_text(request_):
    try:
        text = compact(request_)
    except ValueError:
        # No JSON text (NaN is refused by the strict encoder): the dict is bad input.
        with pytest.raises(pciplan.InvalidInput):
            pciplan.plan(request_)
        return
    except RecursionError:
        with pytest.raises(pciplan.InvalidInput):
            pciplan.plan(request_)
        return
    if "\udc80" in text:
        # Lone surrogates have no UTF-8 form, as text or as a dict.
        with pytest.raises(pciplan.InvalidInput):
            pciplan.plan(request_)
        return
    assert outcome(request_) == outcome(text)


def test_the_batch_reads_dicts_as_their_json_text():
    requests = [r for r in ODD if "nan" not in str(r.get("name")) and "surrogate" not in
                str(r.get("name")) and r.get("name") != "deep"]
    by_dict = list(pciplan.batch(requests))
    by_text = list(pciplan.batch([compact(r) for r in requests]))
    assert by_dict == by_text
    assert any(r["ok"] for r in by_dict) and any(not r["ok"] for r in by_dict)


def test_plans_are_fresh_objects_each_call():
    a = pciplan.plan({"devices": [NET, DISK]})
    b = pciplan.plan({"devices": [NET, DISK]})
    assert a == b and a is not b
    a["devices"][0]["bus"] = "elsewhere"
    a["controllers"].clear()
    assert b["devices"][0]["bus"] == "pcie.0" and b["controllers"]


def test_built_plans_survive_a_round_trip_through_json():
    got = pciplan.plan({"devices": [NET, DISK] + [{"id": f"d{i}", "model": "e1000"}
                                                   for i in range(5)]})
    assert json.loads(json.dumps(got)) == got
    # Only JSON's types: no tuples, no enums, no floats where the text has integers.
    def walk(v):
        if isinstance(v, dict):
            assert all(type(k) is str for k in v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert type(v) in (str, int, bool, type(None)), v
    walk(got)
